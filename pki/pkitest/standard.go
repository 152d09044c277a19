package pkitest

import (
	"fmt"
	"strings"
	"testing"
)

// Standard is the working example `certplane init` scaffolds, built in a
// test's temporary directory.
type Standard struct {
	*Tree
	CA        *CA   // the root CA behind the "clients" trust store and the server cert
	Server    *Leaf // certs/server/default: localhost + 127.0.0.1
	Alice     *Leaf // valid client
	Mallory   *Leaf // client revoked by certs/trust/clients/ca.crl
	Untrusted *Leaf // client "stranger" from a CA nobody trusts
	// Files written, absolute.
	ServerCert, ServerKey string // certs/server/default/tls.crt, tls.key
	TrustCA, TrustCRL     string // certs/trust/clients/ca.pem, ca.crl
	ConfigFile            string // config/listeners.yaml
}

// NewStandard writes certs/server/default/{tls.crt,tls.key},
// certs/trust/clients/{ca.pem,ca.crl} (the CRL revokes Mallory) and
// config/listeners.yaml with one listener "https" on listen (mode verify,
// trust store "clients", XFCC) routing / to backend "demo" whose endpoints
// are backends. Alice, Mallory and Untrusted are returned, not written.
func NewStandard(tb testing.TB, listen string, backends ...string) *Standard {
	tb.Helper()
	s := &Standard{Tree: NewTree(tb)}
	s.CA = NewCA(tb, "certplane test CA")
	s.Server = s.CA.Server("localhost", IPs("127.0.0.1"))
	s.Alice = s.CA.Client("alice")
	s.Mallory = s.CA.Client("mallory")
	s.Untrusted = NewCA(tb, "untrusted test CA").Client("stranger")
	s.CA.Revoke(s.Mallory)
	s.ServerCert, s.ServerKey = s.Tree.Server("default", s.Server)
	s.TrustCA = s.Trust("clients", "ca.pem", s.CA.CertPEM())
	s.TrustCRL = s.Trust("clients", "ca.crl", s.CA.CRLPEM())
	s.ConfigFile = s.WriteConfig("listeners.yaml", ConfigYAML(listen, backends...))
	return s
}

// ConfigYAML renders the listeners.yaml of `certplane init`: listener
// "https" on listen with client_auth verify against trust store "clients",
// XFCC to the backends, and backend "demo" with the given endpoints and an
// HTTP health check on /healthz.
func ConfigYAML(listen string, backends ...string) string {
	quoted := make([]string, len(backends))
	for i, b := range backends {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf(`listeners:
  - name: https
    address: %s
    certificates: [default]
    client_auth:
      mode: verify
      trust_store: clients
    client_cert_headers: [xfcc]
    routes:
      - {path_prefix: /, backend: demo}
backends:
  - name: demo
    endpoints: [%s]
    health_check: {path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
`, listen, strings.Join(quoted, ", "))
}
