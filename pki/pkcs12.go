package pki

import (
	"crypto/x509"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// PKCS12 bundles a leaf, its key, its intermediates and root (caCerts,
// nearest first) into a password-protected PKCS#12 file for browsers and OS
// keychains. It uses PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA-256 and an
// HMAC-SHA-256 MAC (go-pkcs12 Modern2023), which OpenSSL 1.1.1+, NSS, macOS
// and Windows 10+ read; the legacy RC2/3DES profile is not offered.
func PKCS12(l *Leaf, caCerts []*x509.Certificate, password string) ([]byte, error) {
	if password == "" {
		return nil, errors.New("a PKCS#12 file needs a non-empty password")
	}
	data, err := pkcs12.Modern2023.Encode(l.Key, l.Cert, caCerts, password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 for %q: %w", l.Cert.Subject.CommonName, err)
	}
	return data, nil
}
