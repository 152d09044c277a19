package pki

import (
	"crypto/tls"
	"crypto/x509"
)

// TLSCertificate returns the leaf as a tls.Certificate that presents the
// leaf then its intermediates, for a tls.Config.
func (l *Leaf) TLSCertificate() tls.Certificate {
	der := make([][]byte, 0, 1+len(l.Chain))
	der = append(der, l.Cert.Raw)
	for _, c := range l.Chain {
		der = append(der, c.Raw)
	}
	return tls.Certificate{Certificate: der, PrivateKey: l.Key, Leaf: l.Cert}
}

// Pool returns a pool holding the root of the CA's chain (the CA itself for
// a root): what a peer must trust to verify what this CA issues.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	root := ca.Cert
	if n := len(ca.Chain); n > 0 {
		root = ca.Chain[n-1]
	}
	p.AddCert(root)
	return p
}
