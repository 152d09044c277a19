package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The raw structs mirror the YAML schema exactly. They are decoded with
// KnownFields, so an unknown key is an error, then converted to the model
// (convert.go), where defaults are applied and values checked. Pointers mark
// the fields whose absence means "default" rather than the zero value.
type rawFile struct {
	Listeners []rawListener `yaml:"listeners"`
	Backends  []rawBackend  `yaml:"backends"`
	// TrustStores: see truststores.go.
	TrustStores []rawTrustStore `yaml:"trust_stores"`
}

type rawListener struct {
	Name              string           `yaml:"name"`
	Address           string           `yaml:"address"`
	ServerNames       *[]string        `yaml:"server_names"`
	Certificates      []string         `yaml:"certificates"`
	TLSPolicy         *rawTLSPolicy    `yaml:"tls_policy"`
	HTTP2             *bool            `yaml:"http2"`
	HTTP              *rawHTTP         `yaml:"http"`
	ClientAuth        *rawClientAuth   `yaml:"client_auth"`
	ClientCertHeaders *[]rawCertHeader `yaml:"client_cert_headers"`
	Routes            []rawRoute       `yaml:"routes"`
}

type rawHTTP struct {
	HeadersWithUnderscores *string `yaml:"headers_with_underscores"`
}

type rawClientAuth struct {
	Mode              string        `yaml:"mode"`
	TrustStore        string        `yaml:"trust_store"`
	CRL               *string       `yaml:"crl"`
	AllowExpired      bool          `yaml:"allow_expired"`
	MaxVerifyDepth    *uint32       `yaml:"max_verify_depth"`
	CertificateHashes []string      `yaml:"certificate_hashes"`
	SPKIHashes        []string      `yaml:"spki_hashes"`
	AdvertiseCANames  *bool         `yaml:"advertise_ca_names"`
	SubjectAltNames   []rawSAN      `yaml:"subject_alt_names"`
	Subjects          []rawIdentity `yaml:"subjects"`
	OCSP              *rawOCSP      `yaml:"ocsp"`
}

type rawSAN struct {
	Type     string  `yaml:"type"`
	Exact    *string `yaml:"exact"`
	Prefix   *string `yaml:"prefix"`
	Suffix   *string `yaml:"suffix"`
	Contains *string `yaml:"contains"`
	Regex    *string `yaml:"regex"`
}

// rawIdentity is one allow or client_auth.subjects entry.
type rawIdentity struct {
	Type     string  `yaml:"type"`
	Exact    *string `yaml:"exact"`
	Prefix   *string `yaml:"prefix"`
	Suffix   *string `yaml:"suffix"`
	Contains *string `yaml:"contains"`
	Regex    *string `yaml:"regex"`
}

type rawRoute struct {
	Host        string           `yaml:"host"`
	Path        *string          `yaml:"path"`
	PathPrefix  *string          `yaml:"path_prefix"`
	Headers     []rawHeaderMatch `yaml:"headers"`
	Backend     string           `yaml:"backend"`
	Timeout     *string          `yaml:"timeout"`
	IdleTimeout *string          `yaml:"idle_timeout"`
	Retries     *rawRetries      `yaml:"retries"`
	Allow       []rawIdentity    `yaml:"allow"`
}

type rawHeaderMatch struct {
	Name  string  `yaml:"name"`
	Exact *string `yaml:"exact"`
}

type rawRetries struct {
	Attempts *uint32  `yaml:"attempts"`
	On       []string `yaml:"on"`
}

type rawBackend struct {
	Name        string          `yaml:"name"`
	Endpoints   []string        `yaml:"endpoints"`
	LBPolicy    string          `yaml:"lb_policy"`
	HealthCheck *rawHealthCheck `yaml:"health_check"`
	TLS         *rawUpstreamTLS `yaml:"tls"`
}

type rawHealthCheck struct {
	Path               string  `yaml:"path"`
	Interval           string  `yaml:"interval"`
	Timeout            string  `yaml:"timeout"`
	HealthyThreshold   *uint32 `yaml:"healthy_threshold"`
	UnhealthyThreshold *uint32 `yaml:"unhealthy_threshold"`
}

type rawUpstreamTLS struct {
	TrustStore  string `yaml:"trust_store"`
	Certificate string `yaml:"certificate"`
	SNI         string `yaml:"sni"`
}

// rawTLSPolicy is either a policy name (tls12, tls13) or a mapping
// {min_version, max_version, cipher_suites}.
type rawTLSPolicy struct {
	Name         string
	Custom       bool
	MinVersion   string
	MaxVersion   string
	CipherSuites []string
	HasSuites    bool
	line         int
}

func (p *rawTLSPolicy) UnmarshalYAML(n *yaml.Node) error {
	p.line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		p.Name = n.Value
		return nil
	case yaml.MappingNode:
	default:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: tls_policy must be tls12, tls13 or a mapping {min_version, max_version, cipher_suites}", n.Line)}}
	}
	p.Custom = true
	return decodeFields(n, "config.rawCustomTLS", func(key string, v *yaml.Node) (bool, error) {
		switch key {
		case "min_version":
			return true, v.Decode(&p.MinVersion)
		case "max_version":
			return true, v.Decode(&p.MaxVersion)
		case "cipher_suites":
			p.HasSuites = true
			return true, v.Decode(&p.CipherSuites)
		}
		return false, nil
	})
}

// decodeFields decodes the mapping n field by field for a custom
// UnmarshalYAML, gathering every error the way yaml.v3 does for a struct
// (one *yaml.TypeError, each line numbered), so that KnownFields strictness
// and field paths in check's output work inside custom types too. field
// decodes one key and reports whether it knows it; typeName is what an
// unknown key's error names.
func decodeFields(n *yaml.Node, typeName string, field func(key string, v *yaml.Node) (bool, error)) error {
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		known, err := field(k.Value, v)
		if !known {
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, typeName))
			continue
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs = append(errs, te.Errors...)
		} else if err != nil {
			errs = append(errs, fmt.Sprintf("line %d: %v", v.Line, err))
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// ConfigFile is one parsed config file: its listeners and backends with
// defaults applied and each checked on its own. References between them
// and to certificates are resolved by Load.
type ConfigFile struct {
	File      string
	Listeners []*Listener // valid on their own, in file order
	Backends  []*Backend  // valid on their own, in file order
	CRLFetch  []*CRLFetch // trust_stores[].crl_fetch, valid on their own
	trustErrs []Problem   // defects of trust_stores entries (truststores.go)
	// Names lists every listener the file defines, valid or not.
	Names []string
	// Problems holds per-listener defects (Listener set) and per-backend
	// defects (Listener "", the text names the backend).
	Problems []Problem
	// Warnings holds per-listener warnings of valid listeners.
	Warnings []Problem

	nameLines   []int                // line of each of Names
	backendErrs map[string][]Problem // by backend name
	// issuerAt is, by listener name, its first issuer matcher (in subjects
	// or allow): only certplane proxies enforce it (issuerChecks).
	issuerAt map[string]*itemErr
	lines    map[string]*itemLines
}

// itemLines remembers where a listener's or backend's fields are, so the
// problems found later (references) can name the line.
type itemLines struct {
	item, certs, trust, routes, tls int
	names                           int // server_names, else the item
	routeLine                       []int
	endpointLine                    []int // of each backend endpoint
}

// ParseConfig decodes one YAML config file strictly: an unknown key, a
// value of the wrong type, a listener or backend without a valid name are
// errors for the whole file (the error joins them, each with its line). A
// file that decodes returns a ConfigFile whose Problems hold the defects of
// single listeners and backends. An empty file defines nothing.
func ParseConfig(file string, data []byte) (*ConfigFile, error) {
	cf := &ConfigFile{File: file, backendErrs: map[string][]Problem{}, lines: map[string]*itemLines{}}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	tree := yaml.NewDecoder(bytes.NewReader(data))
	var errs []error
	for doc := 0; ; doc++ {
		var raw rawFile
		err := strict.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The tree of the same document names the field a type error is
			// about (the decoder gives only its line).
			var root yaml.Node
			if terr := tree.Decode(&root); terr != nil {
				root = yaml.Node{}
			}
			errs = append(errs, yamlErrors(file, err, docRoot(&root))...)
			break
		}
		var root yaml.Node
		if err := tree.Decode(&root); err != nil {
			errs = append(errs, yamlErrors(file, err, nil)...)
			break
		}
		errs = append(errs, cf.convertDoc(&raw, docRoot(&root))...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cf, nil
}

var (
	reLine         = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknownField = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	reRawType      = regexp.MustCompile(`into config\.raw(\w+)`)
)

// parserErrors are the errors of yaml's parser stage, which it reports
// with a 0-based line (its scanner errors are 1-based).
var parserErrors = []string{
	"found undefined tag handle",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
}

// where names a raw struct for messages about it.
var where = map[string]string{
	"rawFile":        "at the top level",
	"rawListener":    "in a listener",
	"rawHTTP":        "in a listener's http",
	"rawClientAuth":  "in client_auth",
	"rawSAN":         "in a subject_alt_names entry",
	"rawIdentity":    "in an allow or subjects entry",
	"rawRoute":       "in a route",
	"rawHeaderMatch": "in a route's headers entry",
	"rawRetries":     "in a route's retries",
	"rawBackend":     "in a backend",
	"rawHealthCheck": "in health_check",
	"rawUpstreamTLS": "in a backend's tls",
	"rawCustomTLS":   "in tls_policy",
	"rawXFCC":        "in a client_cert_headers xfcc entry",
	"rawTrustStore":  "in a trust_stores entry",
	"rawCRLFetch":    "in crl_fetch",
	"rawOCSP":        "in client_auth.ocsp",
}

var rawTypes = map[string]reflect.Type{
	"rawFile":        reflect.TypeOf(rawFile{}),
	"rawListener":    reflect.TypeOf(rawListener{}),
	"rawHTTP":        reflect.TypeOf(rawHTTP{}),
	"rawClientAuth":  reflect.TypeOf(rawClientAuth{}),
	"rawSAN":         reflect.TypeOf(rawSAN{}),
	"rawIdentity":    reflect.TypeOf(rawIdentity{}),
	"rawRoute":       reflect.TypeOf(rawRoute{}),
	"rawHeaderMatch": reflect.TypeOf(rawHeaderMatch{}),
	"rawRetries":     reflect.TypeOf(rawRetries{}),
	"rawBackend":     reflect.TypeOf(rawBackend{}),
	"rawHealthCheck": reflect.TypeOf(rawHealthCheck{}),
	"rawUpstreamTLS": reflect.TypeOf(rawUpstreamTLS{}),
	"rawTrustStore":  reflect.TypeOf(rawTrustStore{}),
	"rawCRLFetch":    reflect.TypeOf(rawCRLFetch{}),
	"rawOCSP":        reflect.TypeOf(rawOCSP{}),
}

func knownKeys(typ string) string {
	if typ == "rawCustomTLS" {
		return "min_version, max_version, cipher_suites"
	}
	if typ == "rawXFCC" {
		return "mode, fields"
	}
	t, ok := rawTypes[typ]
	if !ok {
		return ""
	}
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("yaml"))
	}
	return strings.Join(keys, ", ")
}

// yamlErrors turns the decoder's errors into FileErrors with lines and
// sentences an operator can act on. root, when known, is the document's
// tree: a type error then names its field.
func yamlErrors(file string, err error, root *yaml.Node) []error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]error, 0, len(msgs))
	for _, m := range msgs {
		line := 0
		if sm := reLine.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = sm[2]
		} else {
			m = strings.TrimPrefix(m, "yaml: ")
		}
		if sm := reUnknownField.FindStringSubmatch(m); sm != nil {
			m = fmt.Sprintf("unknown key %q %s (known keys: %s)", sm[1], where[sm[2]], knownKeys(sm[2]))
		} else if _, isType := err.(*yaml.TypeError); isType {
			m = reRawType.ReplaceAllStringFunc(m, func(s string) string {
				return "into " + strings.TrimPrefix(where["raw"+strings.TrimPrefix(s, "into config.raw")], "in ")
			})
			// Only the decoder's own messages lack the field's name.
			if f := fieldAt(root, line, m); f != "" && (strings.HasPrefix(m, "cannot unmarshal") || strings.HasPrefix(m, "mapping key")) {
				m = f + ": " + m
			}
		} else {
			if slices.Contains(parserErrors, m) {
				// yaml reports parser (not scanner) errors with a 0-based
				// line: that of the enclosing node, or of the problem.
				line++
			}
			m = "invalid YAML: " + m
		}
		out = append(out, lineErr(file, line, errors.New(m)))
	}
	return out
}

// docRoot returns the top mapping of a document node, or nil.
func docRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// mapValue returns the value node of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	_, v := mapEntry(n, key)
	return v
}

// mapEntry returns the key and value nodes of key in mapping n, or nils.
func mapEntry(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], deref(n.Content[i+1])
		}
	}
	return nil, nil
}

// seqItem returns item i of sequence n, or nil.
func seqItem(n *yaml.Node, i int) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return nil
	}
	return deref(n.Content[i])
}

// lineOf returns the line of n, or of fallback when n is nil.
func lineOf(n *yaml.Node, fallback int) int {
	if n == nil {
		return fallback
	}
	return n.Line
}
