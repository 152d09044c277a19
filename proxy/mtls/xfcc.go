package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
)

// XFCC renders the x-forwarded-client-cert value Envoy sets with
// forward_client_cert_details SANITIZE_SET and set_current_client_cert_details
// {subject, cert, chain, uri, dns}, byte for byte
// (ConnectionManagerUtility::mutateXfccRequestHeader):
//
//	By=<local URI SAN>... ;Hash=<hex sha256 of peer DER>;Cert="<url-encoded PEM>";
//	Chain="<url-encoded PEM of every cert the peer sent>";Subject="<RFC 2253>";
//	URI=<peer URI SAN>... (or a lone "URI=");DNS=<peer DNS SAN>...
//
// localCert may be nil (no By). It returns "" when the peer sent no
// certificate: SANITIZE_SET then removes the header.
func XFCC(localCert *x509.Certificate, peerChain []*x509.Certificate) string {
	return XFCCWith(localCert, peerChain, AllXFCCFields)
}

// XFCCFields are the elements of set_current_client_cert_details. Hash
// (and By) are not among them: Envoy always writes them.
type XFCCFields struct {
	Cert, Chain, Subject, URI, DNS bool
}

// AllXFCCFields is subject, cert, chain, uri and dns all set.
var AllXFCCFields = XFCCFields{Cert: true, Chain: true, Subject: true, URI: true, DNS: true}

// XFCCWith is XFCC with only the fields f selects, in Envoy's order
// whatever f's: By, Hash, Cert, Chain, Subject, URI, DNS.
func XFCCWith(localCert *x509.Certificate, peerChain []*x509.Certificate, f XFCCFields) string {
	if len(peerChain) == 0 || peerChain[0] == nil {
		return ""
	}
	leaf := peerChain[0]
	var parts []string
	if localCert != nil {
		for _, gn := range subjectAltNames(localCert) {
			if gn.tag == genURI {
				parts = append(parts, "By="+gn.value)
			}
		}
	}
	sum := sha256.Sum256(leaf.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	if f.Cert {
		parts = append(parts, `Cert="`+urlEncodedPEM(leaf)+`"`)
	}
	if f.Chain {
		var chain strings.Builder
		for _, c := range peerChain {
			if c != nil {
				chain.WriteString(urlEncodedPEM(c))
			}
		}
		parts = append(parts, `Chain="`+chain.String()+`"`)
	}
	if f.Subject {
		// Written even when empty, as Envoy does.
		parts = append(parts, `Subject="`+rfc2253(leaf.RawSubject)+`"`)
	}
	names := subjectAltNames(leaf)
	if f.URI {
		uris := 0
		for _, gn := range names {
			if gn.tag == genURI {
				parts = append(parts, "URI="+gn.value)
				uris++
			}
		}
		if uris == 0 {
			parts = append(parts, "URI=")
		}
	}
	if f.DNS {
		for _, gn := range names {
			if gn.tag == genDNS {
				parts = append(parts, "DNS="+gn.value)
			}
		}
	}
	return strings.Join(parts, ";")
}

// pemEscaper is Envoy's urlEncodedPemEncodedPeerCertificate replacement set.
var pemEscaper = strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D")

// urlEncodedPEM: PEM as PEM_write_bio_X509 writes it (64-column base64),
// then URL-encoded the way Envoy does it.
func urlEncodedPEM(c *x509.Certificate) string {
	return pemEscaper.Replace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
}

// serialHex is BoringSSL's BN_bn2hex, as Envoy prints serials: lowercase,
// leading zero bytes (not nibbles) stripped, "0" for zero, "-" if negative.
func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	if n.Sign() == 0 {
		return "0"
	}
	s := hex.EncodeToString(new(big.Int).Abs(n).Bytes())
	if n.Sign() < 0 {
		return "-" + s
	}
	return s
}
