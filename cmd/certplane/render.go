package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
)

func init() {
	register("render", command{
		summary: "print the Envoy resources (or a static Envoy config) built from the directories",
		run:     runRender,
	})
}

// renderKeys names the sections of render's output, one per resource type.
var renderKeys = map[string]string{
	resource.ListenerType: "listeners",
	resource.RouteType:    "routes",
	resource.ClusterType:  "clusters",
	resource.EndpointType: "endpoints",
	resource.SecretType:   "secrets",
}

const redactedKey = "REDACTED (certplane render --show-keys prints private keys)"

func runRender(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("render",
		"certplane render --certs DIR --config DIR [--show-keys | --bootstrap] | --ads-bootstrap [--xds-address ADDR] [xDS mTLS flags]",
		`Print what certplane serve would serve, as YAML.

By default: every xDS resource, grouped by type (listeners, routes, clusters,
endpoints, secrets), private keys redacted unless --show-keys.

--bootstrap prints a complete static Envoy config instead: the same
listeners, clusters and secrets inline (private keys included), routes and
endpoints inline, admin on 127.0.0.1:9901. Run it with 'envoy -c FILE' or check
it with 'envoy --mode validate -c FILE'.

--ads-bootstrap prints the bootstrap of an Envoy fed by certplane serve at
--xds-address (the repository's bootstrap.yaml is this with the defaults:
serve's unix socket). For a TCP address, give Envoy's side of xDS mTLS:
--xds-cert and --xds-key (Envoy's client certificate, issued by serve's
--xds-client-ca), --xds-ca (the CA of serve's --xds-cert) and
--xds-server-name (a DNS name or IP of serve's certificate); the bootstrap
names these files, Envoy reads them at start. --insecure-xds prints a
plaintext TCP bootstrap instead, for a serve started with --insecure-xds.
Both bootstraps carry Envoy's overload manager (heap and connection limits).

Exits 1, printing nothing on stdout, when the directories have any problem.`)
	certs := fs.String("certs", "", "certificate directory (required)")
	cfg := fs.String("config", "", "config directory (required)")
	static := fs.Bool("bootstrap", false, "print a complete static Envoy config")
	adsBoot := fs.Bool("ads-bootstrap", false, "print an ADS bootstrap pointing at --xds-address")
	xdsAddr := fs.String("xds-address", envoy.DefaultXDSAddress, "certplane's xDS address for --ads-bootstrap: unix:///path or IP:port")
	xdsCert := fs.String("xds-cert", "", "--ads-bootstrap xDS mTLS: Envoy's client certificate chain file (PEM)")
	xdsKey := fs.String("xds-key", "", "--ads-bootstrap xDS mTLS: Envoy's client key file (PEM)")
	xdsCA := fs.String("xds-ca", "", "--ads-bootstrap xDS mTLS: file of the CA that issued certplane serve's certificate (PEM)")
	xdsName := fs.String("xds-server-name", "", "--ads-bootstrap xDS mTLS: DNS name or IP address in certplane serve's certificate")
	insecureXDS := fs.Bool("insecure-xds", false, "--ads-bootstrap: plaintext TCP to a serve started with --insecure-xds (any local user, or anyone who reaches the port, can read every private key)")
	nodeID := fs.String("node-id", envoy.DefaultNodeID, "Envoy node id written in a bootstrap")
	showKeys := fs.Bool("show-keys", false, "print private keys in the resource listing")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *static && *adsBoot {
		return usageError("--bootstrap and --ads-bootstrap are exclusive")
	}
	opts := envoy.BootstrapOptions{NodeID: *nodeID, XDSAddress: *xdsAddr}
	if *adsBoot {
		tlsFiles, err := xdsClientFiles(*xdsCert, *xdsKey, *xdsCA, *xdsName)
		if err != nil {
			return err
		}
		if tlsFiles == nil && !*insecureXDS && !strings.HasPrefix(*xdsAddr, "unix://") {
			return usageError("--xds-address %s is TCP: certplane serve answers there only with xDS mTLS (give --xds-cert, --xds-key, --xds-ca and --xds-server-name) or --insecure-xds (then pass --insecure-xds here too)", *xdsAddr)
		}
		opts.XDSTLS = tlsFiles
		b, err := envoy.ADSBootstrap(opts)
		if err != nil {
			return usageError("%w", err)
		}
		return writeYAML(stdout, b)
	}
	if *certs == "" || *cfg == "" {
		return usageError("--certs and --config are required")
	}
	m, err := config.Load(*certs, *cfg)
	if err != nil {
		return err
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(stderr, "warning: %v\n", w)
	}
	if len(m.Problems) > 0 {
		for _, p := range m.Problems {
			fmt.Fprintf(stderr, "problem: %v\n", p)
		}
		return &exitError{code: 1, err: fmt.Errorf("%d problem(s) found; nothing rendered", len(m.Problems))}
	}
	if *static {
		b, err := envoy.StaticBootstrap(m, opts)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		return writeYAML(stdout, b)
	}
	units, err := envoy.Translate(m)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	sets := make([]envoy.Set, 0, len(units))
	for _, l := range m.Listeners {
		sets = append(sets, units[l.Name])
	}
	all, err := envoy.Merge(sets...)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, t := range envoy.Types {
		rs := all.Sorted(t)
		if t == resource.SecretType && !*showKeys {
			rs = redactKeys(rs)
		}
		seq, err := envoy.YAMLSequence(rs)
		if err != nil {
			return err
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: renderKeys[t]}, seq)
	}
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// redactKeys replaces the private key of each key-pair Secret, so a listing
// pasted into a ticket or a CI log leaks nothing.
func redactKeys(rs []types.Resource) []types.Resource {
	out := make([]types.Resource, len(rs))
	for i, r := range rs {
		s, ok := r.(*tlsv3.Secret)
		if !ok || s.GetTlsCertificate() == nil {
			out[i] = r
			continue
		}
		c := proto.Clone(s).(*tlsv3.Secret)
		c.GetTlsCertificate().PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: redactedKey}}
		out[i] = c
	}
	return out
}

func writeYAML(w io.Writer, m proto.Message) error {
	b, err := envoy.MarshalYAML(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// xdsClientFiles is Envoy's side of xDS mTLS, nil when no flag is given.
// Paths are made absolute: Envoy resolves relative ones from its own
// working directory.
func xdsClientFiles(cert, key, ca, name string) (*envoy.XDSClientTLS, error) {
	if cert == "" && key == "" && ca == "" && name == "" {
		return nil, nil
	}
	if cert == "" || key == "" || ca == "" || name == "" {
		return nil, usageError("xDS mTLS needs all of --xds-cert, --xds-key, --xds-ca and --xds-server-name")
	}
	t := &envoy.XDSClientTLS{ServerName: name}
	for _, f := range []struct {
		dst *string
		src string
	}{{&t.CertFile, cert}, {&t.KeyFile, key}, {&t.CAFile, ca}} {
		abs, err := filepath.Abs(f.src)
		if err != nil {
			return nil, err
		}
		*f.dst = abs
	}
	return t, nil
}
