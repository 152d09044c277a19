package status

import (
	"crypto/x509"
	"strings"
)

// CertificateOf describes c for the status; file is where it was read from,
// "" when unknown (the proxy knows only the Secret).
func CertificateOf(c *x509.Certificate, file string) Certificate {
	out := Certificate{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    strings.ToLower(c.SerialNumber.Text(16)),
		DNSNames:  c.DNSNames,
		Emails:    c.EmailAddresses,
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		File:      file,
	}
	for _, ip := range c.IPAddresses {
		out.IPs = append(out.IPs, ip.String())
	}
	for _, u := range c.URIs {
		out.URIs = append(out.URIs, u.String())
	}
	return out
}
