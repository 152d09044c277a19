package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// timeFormat renders every date in messages: RFC 3339 in UTC.
const timeFormat = time.RFC3339

// certName describes certificate number i (1-based) of a file for messages.
func certName(i int, c *x509.Certificate) string {
	return fmt.Sprintf("certificate %d (%s)", i+1, subjectOf(c))
}

// subjectOf renders a subject the way operators read it in openssl output.
func subjectOf(c *x509.Certificate) string {
	s := c.Subject.String()
	if s == "" {
		return "empty subject"
	}
	return s
}

// weakSignature reports whether a signature algorithm is one TLS stacks
// refuse in certificates they verify.
func weakSignature(a x509.SignatureAlgorithm) (string, bool) {
	switch a {
	case x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return "SHA-1", true
	case x509.MD5WithRSA:
		return "MD5", true
	case x509.MD2WithRSA:
		return "MD2", true
	}
	return "", false
}

// selfSigned reports whether c's own signature verifies with its own key
// and its issuer is its subject. The signature is checked directly so a
// v1 root (no basicConstraints) counts, and SHA-1 roots are still found.
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false
	}
	return signedBy(c, c)
}

// signedBy checks child's signature with parent's public key, ignoring
// parent's CA flags and the algorithm policy (both are checked elsewhere,
// with clearer messages).
func signedBy(child, parent *x509.Certificate) bool {
	if _, weak := weakSignature(child.SignatureAlgorithm); weak {
		// crypto/x509 refuses to verify these; compare names and key ids so
		// the weak-algorithm message, not an ordering one, is what we report.
		return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
			(len(child.AuthorityKeyId) == 0 || len(parent.SubjectKeyId) == 0 || bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId))
	}
	return parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

// selfSignedServer reports whether chain is a lone self-signed server
// certificate: what `openssl req -x509` makes, marked CA:TRUE by OpenSSL 3's
// default config. Envoy and nginx serve it, so certplane does too, with a
// warning (caWarning). A CA certificate followed by others, as when an
// issuing CA is placed before its leaf, is still refused.
func selfSignedServer(chain []*x509.Certificate, role string) bool {
	return role == RoleServer && len(chain) == 1 && selfSigned(chain[0])
}

// caWarning explains why serving a self-signed CA certificate is unusual:
// whoever holds its key can mint certificates that anyone who trusts it, to
// reach this server, will also accept for any other name.
func caWarning(c *x509.Certificate) error {
	return fmt.Errorf("%s is a self-signed CA certificate (basicConstraints CA:TRUE, the default of `openssl req -x509`) used as the server's own certificate; "+
		"it is served, but a client told to trust it also trusts every certificate its key signs: issue the server certificate from a CA "+
		"(certplane pki server) or make it with -addext basicConstraints=critical,CA:FALSE", certName(0, c))
}

// checkKeyStrength accepts the key types and sizes Envoy serves.
func checkKeyStrength(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Errorf("RSA key of %d bits is too weak; use at least 2048 bits", n)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA curve %s is not supported; use P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		return fmt.Errorf("ed25519 keys are not supported by Envoy for TLS certificates; use ECDSA P-256 or RSA 2048+")
	default:
		return fmt.Errorf("unsupported public key type %T; use ECDSA P-256 or RSA 2048+", pub)
	}
	return nil
}

// reissueHint tells how to replace a weakly signed certificate: kind is
// "server", "client" or "intermediate".
func reissueHint(kind string) string {
	cmd := "certplane pki " + kind
	if kind == "intermediate" {
		cmd = "certplane pki ca --intermediate-of"
	}
	return fmt.Sprintf("reissue it signed with SHA-256 (%s, or openssl with -sha256)", cmd)
}

// checkChain validates a presented chain (leaf first) as a TLS peer would
// see it: order, CA flags, dates, algorithms and key sizes. role is
// "server" or "client"; it picks the extended key usage to require.
func checkChain(chain []*x509.Certificate, role string, now time.Time) error {
	leaf := chain[0]
	if leaf.BasicConstraintsValid && leaf.IsCA && !selfSignedServer(chain, role) {
		return fmt.Errorf("%s is a CA certificate; the first certificate must be the %s's own (leaf) certificate", certName(0, leaf), role)
	}
	if err := checkKeyStrength(leaf.PublicKey); err != nil {
		return fmt.Errorf("%s: %w", certName(0, leaf), err)
	}
	if !hasEKU(leaf, role) {
		return fmt.Errorf("%s lacks the %sAuth extended key usage; TLS peers will refuse it", certName(0, leaf), role)
	}
	for i, c := range chain {
		last := i == len(chain)-1
		root := last && i > 0 && selfSigned(c)
		if now.Before(c.NotBefore) {
			return fmt.Errorf("%s is not valid until %s", certName(i, c), c.NotBefore.UTC().Format(timeFormat))
		}
		if now.After(c.NotAfter) {
			return fmt.Errorf("%s expired on %s", certName(i, c), c.NotAfter.UTC().Format(timeFormat))
		}
		// A root's self-signature is never checked by a verifier: only the
		// certificates below it matter.
		if alg, weak := weakSignature(c.SignatureAlgorithm); weak && !root {
			kind := role
			if i > 0 {
				kind = "intermediate"
			}
			return fmt.Errorf("%s is signed with %s (%s), which TLS clients refuse; %s", certName(i, c), alg, c.SignatureAlgorithm, reissueHint(kind))
		}
		if i == 0 {
			continue
		}
		if c.Version < 3 && !root {
			return fmt.Errorf("%s is an X.509 v1 certificate used as an intermediate CA; v1 certificates cannot say they are CAs, so verifiers refuse them: reissue it as a v3 CA (basicConstraints CA:TRUE)", certName(i, c))
		}
		if c.Version >= 3 && !(c.BasicConstraintsValid && c.IsCA) {
			return fmt.Errorf("%s is not a CA certificate, yet it follows %s in the chain", certName(i, c), certName(i-1, chain[i-1]))
		}
		if err := checkKeyStrength(c.PublicKey); err != nil && !root {
			return fmt.Errorf("%s: %w", certName(i, c), err)
		}
	}
	for i := 0; i+1 < len(chain); i++ {
		if signedBy(chain[i], chain[i+1]) {
			continue
		}
		hint := "it is not in the file"
		for j, c := range chain {
			if j != i && j != i+1 && signedBy(chain[i], c) {
				hint = fmt.Sprintf("%s is; the chain is out of order", certName(j, c))
				break
			}
		}
		return fmt.Errorf("%s did not sign %s (%s): order the chain leaf first, then each issuer", certName(i+1, chain[i+1]), certName(i, chain[i]), hint)
	}
	return nil
}

func hasEKU(c *x509.Certificate, role string) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true // no EKU extension: any usage
	}
	want := x509.ExtKeyUsageServerAuth
	if role == "client" {
		want = x509.ExtKeyUsageClientAuth
	}
	for _, u := range c.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// sanList renders a certificate's SANs for messages and `certplane check`.
func sanList(c *x509.Certificate) []string {
	var out []string
	for _, d := range c.DNSNames {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "IP:"+ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, "URI:"+u.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email:"+e)
	}
	return out
}

// SANs lists a certificate's subject alternative names as "DNS:x",
// "IP:x", "URI:x", "email:x", for display.
func SANs(c *x509.Certificate) string { return strings.Join(sanList(c), ", ") }
