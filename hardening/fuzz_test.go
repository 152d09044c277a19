package hardening_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/xds/client"
)

// fuzzYAML is the config of the fuzzed tree: listener "a" over the fuzzed
// server certificate and trust store.
const fuzzYAML = `listeners:
  - name: a
    address: 127.0.0.1:8443
    certificates: [a]
    client_auth:
      mode: verify
      trust_store: ta
    client_cert_headers: [xfcc, alb]
    routes:
      - {path_prefix: /, backend: backend-a}
backends:
  - name: backend-a
    endpoints: ["127.0.0.1:9001"]
`

// FuzzLoadTree fuzzes the certificate directory loader on a real tree (the
// server certificate and key, a CA bundle and a CRL file, PEM or DER, and
// the YAML) and follows whatever it accepts through both planes: the loader
// never fails on file contents and names a file in every problem; a
// listener it accepts has a usable key pair, translates to Envoy resources,
// and those resources are accepted by the proxy's validator, the same
// verdict the proxy gives them over xDS. Seeds: testdata/fuzz/FuzzLoadTree
// and a good tree made here.
func FuzzLoadTree(f *testing.F) {
	root, _ := pki.NewRootCA(pki.Options{CommonName: "fuzz root"})
	srv, _ := root.IssueServer(pki.Options{DNSNames: []string{"localhost"}})
	keyPEM, _ := pki.KeyPEM(srv.Key)
	crl, _ := root.CRL(pki.CRLOptions{})
	f.Add(srv.ChainPEM(), keyPEM, pki.CertPEM(root.Cert), pki.CRLPEM(crl), []byte(fuzzYAML))
	f.Add(srv.Cert.Raw, keyPEM, root.Cert.Raw, crl, []byte(fuzzYAML))
	f.Add(srv.ChainPEM()[:200], keyPEM, append(pki.CertPEM(root.Cert), pki.CRLPEM(crl)...), []byte{}, []byte(fuzzYAML))

	f.Fuzz(func(t *testing.T, crt, key, bundle, crlData, yaml []byte) {
		dir := t.TempDir()
		certs, cfg := filepath.Join(dir, "certs"), filepath.Join(dir, "config")
		for rel, data := range map[string][]byte{
			"certs/server/a/tls.crt":  crt,
			"certs/server/a/tls.key":  key,
			"certs/trust/ta/ca.pem":   bundle,
			"certs/trust/ta/list.crl": crlData,
			"config/a.yaml":           yaml,
		} {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m, err := config.Load(certs, cfg)
		if err != nil {
			t.Fatalf("Load failed on file contents: %v", err)
		}
		for _, p := range append(append([]config.Problem{}, m.Problems...), m.Warnings...) {
			if p.Err == nil || !strings.HasPrefix(p.File, dir) || !strings.Contains(p.Err.Error(), p.File) {
				t.Fatalf("problem does not name its file: %+v", p)
			}
		}
		for _, l := range m.Listeners {
			for _, c := range l.Certificates {
				kp := m.Servers[c]
				if _, err := tls.X509KeyPair(kp.ChainPEM, kp.KeyPEM); err != nil {
					t.Fatalf("accepted key pair %s unusable: %v", c, err)
				}
			}
			set, err := envoy.Unit(m, l)
			if err != nil {
				// A translation error keeps the listener out of the
				// snapshot (xds.Publisher); it must not panic.
				continue
			}
			checkProxyAccepts(t, set)
		}
	})
}

// checkProxyAccepts runs the proxy's xDS validator over a translated set,
// type by type in ADS order, making the secrets current first as a proxy
// that ACKed them would.
func checkProxyAccepts(t *testing.T, set envoy.Set) {
	t.Helper()
	p := proxy.New(proxy.Options{})
	msgs := func(typeURL string) []proto.Message {
		var out []proto.Message
		for _, r := range set[typeURL] {
			out = append(out, r)
		}
		return out
	}
	if err := p.Validate(resource.SecretType, msgs(resource.SecretType)); err != nil {
		t.Fatalf("proxy NACKs secrets the control plane publishes: %v", err)
	}
	res := client.Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
		Versions:  map[string]string{resource.SecretType: "1"},
	}
	for n, r := range set[resource.SecretType] {
		res.Secrets[n] = r.(*tlsv3.Secret)
	}
	p.Update(res)
	for _, typeURL := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		if err := p.Validate(typeURL, msgs(typeURL)); err != nil {
			t.Fatalf("proxy NACKs %s the control plane publishes: %v", typeURL, err)
		}
	}
}
