package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	reItemName = regexp.MustCompile(`^[a-z0-9-]+$`)
	// Certificate and trust store names come from file and directory names.
	reFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// DefaultCipherSuites are the TLS 1.2 suites of the default policy: ECDHE
// key exchange with AEAD ciphers only, in BoringSSL names as Envoy takes
// them. Also the set a custom policy may choose from.
var DefaultCipherSuites = []string{
	"ECDHE-ECDSA-AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305",
	"ECDHE-RSA-CHACHA20-POLY1305",
}

// pathLine returns the line of the last of keys under n (the key's own
// line, where an operator looks), or of the deepest key found, or fallback.
func pathLine(n *yaml.Node, fallback int, keys ...string) int {
	line := lineOf(n, fallback)
	for _, k := range keys {
		kn, vn := mapEntry(n, k)
		if kn == nil {
			return line
		}
		line, n = kn.Line, vn
	}
	return line
}

// convertDoc converts one decoded document. It returns the file-wide
// errors (items without a usable name); per-item defects go to Problems.
func (cf *ConfigFile) convertDoc(raw *rawFile, root *yaml.Node) []error {
	var fileErrs []error
	cf.convertTrustStores(raw.TrustStores, root)
	lnodes := mapValue(root, "listeners")
	for i, rl := range raw.Listeners {
		n := seqItem(lnodes, i)
		if !reItemName.MatchString(rl.Name) {
			fileErrs = append(fileErrs, lineErr(cf.File, pathLine(n, 0, "name"),
				fmt.Errorf("listener %d: name %q must match [a-z0-9-]+", len(cf.Names)+1, rl.Name)))
			continue
		}
		cf.Names = append(cf.Names, rl.Name)
		cf.nameLines = append(cf.nameLines, lineOf(n, 0))
		lines := &itemLines{
			item:   lineOf(n, 0),
			certs:  pathLine(n, 0, "certificates"),
			trust:  pathLine(n, 0, "client_auth", "trust_store"),
			names:  pathLine(n, 0, "server_names"),
			routes: pathLine(n, 0, "routes"),
		}
		for j := range rl.Routes {
			lines.routeLine = append(lines.routeLine, lineOf(seqItem(mapValue(n, "routes"), j), lines.routes))
		}
		if _, dup := cf.lines[rl.Name]; !dup {
			cf.lines[rl.Name] = lines
		}
		var issuerAt *itemErr
		l, err := convertListener(&rl, n, &issuerAt)
		if err != nil {
			cf.Problems = append(cf.Problems, problemOf(rl.Name, lineErr(cf.File, err.line, fmt.Errorf("listener %q: %w", rl.Name, err.err))))
			continue
		}
		l.SourceFile = cf.File
		if issuerAt != nil {
			if cf.issuerAt == nil {
				cf.issuerAt = map[string]*itemErr{}
			}
			cf.issuerAt[l.Name] = issuerAt
		}
		cf.Listeners = append(cf.Listeners, l)
		cf.Warnings = append(cf.Warnings, xfccWarning(cf.File, pathLine(n, 0, "client_cert_headers"), l)...)
	}
	bnodes := mapValue(root, "backends")
	for i, rb := range raw.Backends {
		n := seqItem(bnodes, i)
		if !reItemName.MatchString(rb.Name) {
			fileErrs = append(fileErrs, lineErr(cf.File, pathLine(n, 0, "name"),
				fmt.Errorf("backend %d: name %q must match [a-z0-9-]+", i+1, rb.Name)))
			continue
		}
		if _, dup := cf.lines["backend/"+rb.Name]; !dup {
			lines := &itemLines{item: lineOf(n, 0), tls: pathLine(n, 0, "tls")}
			for j := range rb.Endpoints {
				lines.endpointLine = append(lines.endpointLine, lineOf(seqItem(mapValue(n, "endpoints"), j), pathLine(n, 0, "endpoints")))
			}
			cf.lines["backend/"+rb.Name] = lines
		}
		b, err := convertBackend(&rb, n)
		if err != nil {
			p := problemOf("", lineErr(cf.File, err.line, fmt.Errorf("backend %q: %w", rb.Name, err.err)))
			cf.Problems = append(cf.Problems, p)
			cf.backendErrs[rb.Name] = append(cf.backendErrs[rb.Name], p)
			continue
		}
		b.SourceFile = cf.File
		cf.Backends = append(cf.Backends, b)
	}
	return fileErrs
}

// problemOf makes a Problem of err, taking File and Line from its FileError.
func problemOf(listener string, err error) Problem {
	p := Problem{Listener: listener, Err: err}
	var fe *FileError
	if errors.As(err, &fe) {
		p.File, p.Line = fe.File, fe.Line
	}
	return p
}

// itemErr is a conversion defect at a line.
type itemErr struct {
	line int
	err  error
}

func errAt(line int, format string, args ...any) *itemErr {
	return &itemErr{line: line, err: fmt.Errorf(format, args...)}
}

// convertListener converts one listener; *issuerAt is set to its first
// issuer matcher, if any.
func convertListener(rl *rawListener, n *yaml.Node, issuerAt **itemErr) (*Listener, *itemErr) {
	at := func(keys ...string) int { return pathLine(n, 0, keys...) }
	l := &Listener{Name: rl.Name, Address: rl.Address, HTTP2: true}
	host, port, err := parseHostPort(rl.Address)
	if err != nil {
		return nil, errAt(at("address"), "address %q: %v", rl.Address, err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return nil, errAt(at("address"), "address %q: host %q must be an IP address (0.0.0.0 or :: for every interface)", rl.Address, host)
	}
	l.Host, l.Port = addr.String(), port
	names, ierr := convertServerNames(rl.ServerNames, at("server_names"))
	if ierr != nil {
		return nil, ierr
	}
	l.ServerNames = names

	if len(rl.Certificates) == 0 {
		return nil, errAt(at("certificates"), "certificates: at least one server certificate name is required")
	}
	for i, c := range rl.Certificates {
		if !reFileName.MatchString(c) {
			return nil, errAt(at("certificates"), "certificates[%d]: %q is not a certificate name (a file or directory name under certs/server)", i, c)
		}
		if slices.Contains(rl.Certificates[:i], c) {
			return nil, errAt(at("certificates"), "certificates: %q is listed twice", c)
		}
	}
	l.Certificates = slices.Clone(rl.Certificates)

	pol, ierr := convertTLSPolicy(rl.TLSPolicy)
	if ierr != nil {
		return nil, ierr
	}
	l.TLS = pol
	if rl.HTTP2 != nil {
		l.HTTP2 = *rl.HTTP2
	}
	httpKey, httpNode := mapEntry(n, "http")
	hp, ierr := convertHTTP(rl.HTTP, httpNode, lineOf(httpKey, lineOf(n, 0)))
	if ierr != nil {
		return nil, ierr
	}
	l.HTTP = hp
	caKey, caNode := mapEntry(n, "client_auth")
	ca, ierr := convertClientAuth(rl.ClientAuth, caNode, lineOf(caKey, lineOf(n, 0)), issuerAt)
	if ierr != nil {
		return nil, ierr
	}
	l.ClientAuth = ca

	switch {
	case rl.ClientCertHeaders != nil:
		hs, x, ierr := convertCertHeaders(*rl.ClientCertHeaders, ca.Mode, at("client_cert_headers"))
		if ierr != nil {
			return nil, ierr
		}
		l.ClientCertHeaders, l.XFCC = hs, x
	case ca.Mode != ModeOff:
		l.ClientCertHeaders = []ClientCertHeader{HeaderXFCC}
		l.XFCC = DefaultXFCC()
	}

	if len(rl.Routes) == 0 {
		return nil, errAt(at("routes"), "routes: at least one route is required")
	}
	routes := mapValue(n, "routes")
	for i := range rl.Routes {
		rn := seqItem(routes, i)
		r, ierr := convertRoute(i, &rl.Routes[i], rn, lineOf(rn, at("routes")), l.Routes)
		if ierr != nil {
			return nil, ierr
		}
		l.Routes = append(l.Routes, r)
	}
	if ierr := convertRouteAllow(l, rl.Routes, routes, at("routes"), issuerAt); ierr != nil {
		return nil, ierr
	}
	return l, nil
}

// convertHTTP converts a listener's http block, whose value node is n and
// whose key is on line keyLine.
func convertHTTP(rh *rawHTTP, n *yaml.Node, keyLine int) (HTTPPolicy, *itemErr) {
	p := HTTPPolicy{HeadersWithUnderscores: UnderscoresDrop}
	if rh == nil || rh.HeadersWithUnderscores == nil {
		return p, nil
	}
	a, err := ParseUnderscoresAction(*rh.HeadersWithUnderscores)
	if err != nil {
		return p, errAt(pathLine(n, keyLine, "headers_with_underscores"), "http: %v", err)
	}
	p.HeadersWithUnderscores = a
	return p, nil
}

// parseHostPort splits host:port and checks the port.
func parseHostPort(s string) (string, uint32, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", 0, errors.New("want host:port, e.g. 0.0.0.0:8443 or [::]:8443")
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q must be a number from 1 to 65535", ps)
	}
	return host, uint32(p), nil
}

func convertTLSPolicy(rp *rawTLSPolicy) (TLSPolicy, *itemErr) {
	if rp == nil {
		return defaultTLSPolicy(), nil
	}
	if !rp.Custom {
		switch rp.Name {
		case "tls12", "":
			return defaultTLSPolicy(), nil
		case "tls13":
			return TLSPolicy{Name: TLSPolicy13, MinVersion: TLSv13, MaxVersion: TLSv13}, nil
		}
		return TLSPolicy{}, errAt(rp.line, "tls_policy %q: want tls12, tls13 or a mapping {min_version, max_version, cipher_suites}", rp.Name)
	}
	p := TLSPolicy{Name: TLSPolicyCustom, MinVersion: TLSv12, MaxVersion: TLSv13}
	var err error
	if rp.MinVersion != "" {
		if p.MinVersion, err = tlsVersion(rp.MinVersion); err != nil {
			return TLSPolicy{}, errAt(rp.line, "tls_policy: min_version: %v", err)
		}
	}
	if rp.MaxVersion != "" {
		if p.MaxVersion, err = tlsVersion(rp.MaxVersion); err != nil {
			return TLSPolicy{}, errAt(rp.line, "tls_policy: max_version: %v", err)
		}
	}
	if p.MinVersion == TLSv13 && p.MaxVersion == TLSv12 {
		return TLSPolicy{}, errAt(rp.line, "tls_policy: min_version 1.3 is above max_version 1.2")
	}
	if !rp.HasSuites {
		if p.MinVersion == TLSv12 {
			p.CipherSuites = slices.Clone(DefaultCipherSuites)
		}
		return p, nil
	}
	if p.MinVersion == TLSv13 {
		return TLSPolicy{}, errAt(rp.line, "tls_policy: cipher_suites apply to TLS 1.2 only and min_version is 1.3; remove them")
	}
	if len(rp.CipherSuites) == 0 {
		return TLSPolicy{}, errAt(rp.line, "tls_policy: cipher_suites is empty; omit it for the default ECDHE AEAD suites")
	}
	for _, s := range rp.CipherSuites {
		if !slices.Contains(DefaultCipherSuites, s) {
			return TLSPolicy{}, errAt(rp.line, "tls_policy: cipher suite %q is not allowed; choose from %s", s, strings.Join(DefaultCipherSuites, ", "))
		}
		if slices.Contains(p.CipherSuites, s) {
			return TLSPolicy{}, errAt(rp.line, "tls_policy: cipher suite %q is listed twice", s)
		}
		p.CipherSuites = append(p.CipherSuites, s)
	}
	return p, nil
}

func defaultTLSPolicy() TLSPolicy {
	return TLSPolicy{Name: TLSPolicy12, MinVersion: TLSv12, MaxVersion: TLSv13, CipherSuites: slices.Clone(DefaultCipherSuites)}
}

func tlsVersion(s string) (TLSVersion, error) {
	switch s {
	case "1.2":
		return TLSv12, nil
	case "1.3":
		return TLSv13, nil
	case "1.0", "1.1":
		return 0, fmt.Errorf("TLS %s is not allowed; want \"1.2\" or \"1.3\"", s)
	}
	return 0, fmt.Errorf("%q: want \"1.2\" or \"1.3\"", s)
}

// convertClientAuth converts client_auth, whose value node is n and whose
// key is on line keyLine.
func convertClientAuth(rc *rawClientAuth, n *yaml.Node, keyLine int, issuerAt **itemErr) (ClientAuth, *itemErr) {
	at := func(keys ...string) int { return pathLine(n, keyLine, keys...) }
	item := func(key string, i int) int { return lineOf(seqItem(mapValue(n, key), i), at(key)) }
	ca := ClientAuth{Mode: ModeOff, CRL: CRLFullChain, AdvertiseCANames: true}
	var ierr *itemErr
	if rc == nil {
		return ca, nil
	}
	mode, err := ParseClientAuthMode(rc.Mode)
	if err != nil {
		return ca, errAt(at("mode"), "client_auth: %v", err)
	}
	ca.Mode = mode
	if !ca.Mode.VerifiesClients() {
		// Envoy rejects a CRL, SAN matchers or allow_expired without a
		// trusted CA, and these modes verify nothing: refuse them here
		// rather than publish a listener Envoy NACKs or a rule nobody checks.
		var set []string
		if rc.TrustStore != "" {
			set = append(set, "trust_store")
		}
		if rc.CRL != nil {
			set = append(set, "crl")
		}
		if rc.AllowExpired {
			set = append(set, "allow_expired")
		}
		if rc.MaxVerifyDepth != nil {
			set = append(set, "max_verify_depth")
		}
		if len(rc.CertificateHashes) > 0 {
			set = append(set, "certificate_hashes")
		}
		if len(rc.SPKIHashes) > 0 {
			set = append(set, "spki_hashes")
		}
		if len(rc.SubjectAltNames) > 0 {
			set = append(set, "subject_alt_names")
		}
		if rc.Subjects != nil {
			set = append(set, "subjects")
		}
		if len(set) > 0 {
			what := "requests no client certificate"
			if ca.Mode == ModePassthrough {
				what = "accepts any client certificate without verifying it"
			}
			return ca, errAt(at("mode"), "client_auth: mode %s %s, so %s cannot apply (use mode verify)", ca.Mode, what, strings.Join(set, ", "))
		}
	}
	if rc.AdvertiseCANames != nil {
		ca.AdvertiseCANames = *rc.AdvertiseCANames
	}
	if !ca.Mode.VerifiesClients() {
		if rc.OCSP != nil && rc.OCSP.Mode != "" && rc.OCSP.Mode != string(OCSPOff) {
			_, ierr := convertOCSP(rc.OCSP, n, keyLine, ca.Mode)
			return ca, ierr
		}
		return ca, nil
	}
	if rc.TrustStore == "" {
		return ca, errAt(at("mode"), "client_auth: mode %s needs a trust_store (a directory under certs/trust)", ca.Mode)
	}
	if !reFileName.MatchString(rc.TrustStore) {
		return ca, errAt(at("trust_store"), "client_auth: trust_store %q is not a trust store name (a directory name under certs/trust)", rc.TrustStore)
	}
	ca.TrustStore = rc.TrustStore
	if rc.CRL != nil {
		if ca.CRL, err = ParseCRLScope(*rc.CRL); err != nil {
			return ca, errAt(at("crl"), "client_auth: %v", err)
		}
	}
	ca.AllowExpired = rc.AllowExpired
	if rc.MaxVerifyDepth != nil {
		d := *rc.MaxVerifyDepth
		ca.MaxVerifyDepth = &d
	}
	if ca.Mode == ModeOptional && (len(rc.SubjectAltNames) > 0 || len(rc.CertificateHashes) > 0 || len(rc.SPKIHashes) > 0) {
		return ca, errAt(at("mode"), "client_auth: mode optional with subject_alt_names or pins: in Envoy any SAN matcher or pin makes a client certificate mandatory, so the listener would not be optional (use mode verify)")
	}
	for i, h := range rc.CertificateHashes {
		norm := strings.ToLower(strings.ReplaceAll(h, ":", ""))
		if b, err := hex.DecodeString(norm); err != nil || len(b) != 32 {
			return ca, errAt(item("certificate_hashes", i), "client_auth: certificate_hashes[%d] %q: want the SHA-256 of the certificate's DER as 64 hex digits (openssl x509 -in cert.pem -noout -fingerprint -sha256)", i, h)
		}
		if slices.Contains(ca.CertificateHashes, norm) {
			return ca, errAt(item("certificate_hashes", i), "client_auth: certificate_hashes[%d] %q is listed twice", i, h)
		}
		ca.CertificateHashes = append(ca.CertificateHashes, norm)
	}
	for i, h := range rc.SPKIHashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != 32 {
			return ca, errAt(item("spki_hashes", i), "client_auth: spki_hashes[%d] %q: want the base64 SHA-256 of the certificate's SubjectPublicKeyInfo (44 characters)", i, h)
		}
		norm := base64.StdEncoding.EncodeToString(b)
		if slices.Contains(ca.SPKIHashes, norm) {
			return ca, errAt(item("spki_hashes", i), "client_auth: spki_hashes[%d] %q is listed twice", i, h)
		}
		ca.SPKIHashes = append(ca.SPKIHashes, norm)
	}
	for i, rs := range rc.SubjectAltNames {
		m, err := convertSAN(rs)
		if err != nil {
			return ca, errAt(item("subject_alt_names", i), "client_auth: subject_alt_names[%d]: %v", i, err)
		}
		ca.SubjectAltNames = append(ca.SubjectAltNames, m)
	}
	if rc.Subjects != nil {
		if len(rc.Subjects) == 0 {
			return ca, errAt(at("subjects"), "client_auth: subjects is empty, which would admit nobody; remove it to admit every verified client")
		}
		subjects, ierr := convertIdentities(rc.Subjects, mapValue(n, "subjects"), at("subjects"), "client_auth: subjects", issuerAt)
		if ierr != nil {
			return ca, ierr
		}
		ca.Subjects = subjects
	}
	if rc.OCSP != nil {
		if ca.OCSP, ierr = convertOCSP(rc.OCSP, n, keyLine, ca.Mode); ierr != nil {
			return ca, ierr
		}
	}
	return ca, nil
}

// oneStringMatch checks the string-matcher choice of a SAN rule or an
// identity matcher: exactly one of exact, prefix, suffix, contains, regex,
// not empty, and a regex that compiles as RE2 (Go's regexp implements the
// dialect of Envoy's safe_regex). It returns the five values in that order,
// all empty but the one given.
func oneStringMatch(exact, prefix, suffix, contains, regex *string) ([5]string, error) {
	kinds := [5]string{"exact", "prefix", "suffix", "contains", "regex"}
	var out [5]string
	n, set := 0, 0
	for i, v := range [5]*string{exact, prefix, suffix, contains, regex} {
		if v != nil {
			n, set, out[i] = n+1, i, *v
		}
	}
	if n != 1 {
		return out, fmt.Errorf("want exactly one of exact, prefix, suffix, contains, regex; got %d", n)
	}
	if out[set] == "" {
		return out, fmt.Errorf("%s must not be empty", kinds[set])
	}
	if set == 4 {
		if _, err := regexp.Compile(out[4]); err != nil {
			return out, fmt.Errorf("regex %q does not compile as RE2: %v", out[4], err)
		}
	}
	return out, nil
}

// convertSAN checks one subject-alt-name rule as the YAML gives it.
func convertSAN(rs rawSAN) (SANMatcher, error) {
	t, err := ParseSANType(rs.Type)
	if err != nil {
		return SANMatcher{}, err
	}
	m := SANMatcher{Type: t}
	v, err := oneStringMatch(rs.Exact, rs.Prefix, rs.Suffix, rs.Contains, rs.Regex)
	if err != nil {
		return m, err
	}
	m.Exact, m.Prefix, m.Suffix, m.Contains, m.Regex = v[0], v[1], v[2], v[3], v[4]
	if m.Type == SANIP && m.Exact != "" {
		if _, err := netip.ParseAddr(m.Exact); err != nil {
			return m, fmt.Errorf("exact %q is not an IP address", m.Exact)
		}
	}
	return m, nil
}

func convertBackend(rb *rawBackend, n *yaml.Node) (*Backend, *itemErr) {
	at := func(keys ...string) int { return pathLine(n, 0, keys...) }
	b := &Backend{Name: rb.Name}
	lb, err := ParseLBPolicy(rb.LBPolicy)
	if err != nil {
		return nil, errAt(at("lb_policy"), "%v", err)
	}
	b.LBPolicy = lb
	if len(rb.Endpoints) == 0 {
		return nil, errAt(at("endpoints"), "endpoints: at least one host:port is required")
	}
	seen := map[string]bool{}
	for i, e := range rb.Endpoints {
		host, port, err := parseHostPort(e)
		if err != nil {
			return nil, errAt(at("endpoints"), "endpoints[%d] %q: %v", i, e, err)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" || a.IsUnspecified() {
				return nil, errAt(at("endpoints"), "endpoints[%d] %q: %s is not a host address", i, e, host)
			}
			host = a.String()
		} else if !validDNSName(host) {
			return nil, errAt(at("endpoints"), "endpoints[%d] %q: host %q is neither an IP address nor a DNS name", i, e, host)
		}
		key := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if seen[key] {
			return nil, errAt(at("endpoints"), "endpoints[%d] %q is listed twice", i, e)
		}
		seen[key] = true
		b.Endpoints = append(b.Endpoints, Endpoint{Host: host, Port: port})
	}
	if hc := rb.HealthCheck; hc != nil {
		h := &HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}
		if hc.Path != "" {
			if !strings.HasPrefix(hc.Path, "/") {
				return nil, errAt(at("health_check", "path"), "health_check: path %q must start with /", hc.Path)
			}
			h.Path = hc.Path
		}
		for _, d := range []struct {
			key, val string
			dst      *time.Duration
		}{{"interval", hc.Interval, &h.Interval}, {"timeout", hc.Timeout, &h.Timeout}} {
			if d.val == "" {
				continue
			}
			v, err := time.ParseDuration(d.val)
			if err != nil || v <= 0 {
				return nil, errAt(at("health_check", d.key), "health_check: %s %q: want a positive duration such as 5s or 500ms", d.key, d.val)
			}
			*d.dst = v
		}
		if h.Timeout > h.Interval {
			return nil, errAt(at("health_check"), "health_check: timeout %s is longer than interval %s", h.Timeout, h.Interval)
		}
		if hc.HealthyThreshold != nil {
			h.HealthyThreshold = *hc.HealthyThreshold
		}
		if hc.UnhealthyThreshold != nil {
			h.UnhealthyThreshold = *hc.UnhealthyThreshold
		}
		if h.HealthyThreshold == 0 || h.UnhealthyThreshold == 0 {
			return nil, errAt(at("health_check"), "health_check: thresholds must be at least 1")
		}
		b.HealthCheck = h
	}
	if t := rb.TLS; t != nil {
		if t.TrustStore == "" {
			return nil, errAt(at("tls"), "tls: trust_store is required to verify the backends (a directory under certs/trust)")
		}
		if !reFileName.MatchString(t.TrustStore) {
			return nil, errAt(at("tls", "trust_store"), "tls: trust_store %q is not a trust store name", t.TrustStore)
		}
		if t.Certificate != "" && !reFileName.MatchString(t.Certificate) {
			return nil, errAt(at("tls", "certificate"), "tls: certificate %q is not a certificate name (under certs/client)", t.Certificate)
		}
		if t.SNI != "" && !validDNSName(t.SNI) {
			return nil, errAt(at("tls", "sni"), "tls: sni %q is not a DNS name", t.SNI)
		}
		b.TLS = &UpstreamTLS{TrustStore: t.TrustStore, Certificate: t.Certificate, SNI: t.SNI}
	}
	return b, nil
}

// validDNSName checks hostname syntax (RFC 1123 labels).
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
