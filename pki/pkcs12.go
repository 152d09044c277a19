package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"software.sslmate.com/src/go-pkcs12"
)

// PKCS12 bundles a leaf, its key, its intermediates and root (caCerts,
// nearest first) into a password-protected PKCS#12 file for browsers and OS
// keychains. It uses PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA-256 and an
// HMAC-SHA-256 MAC (go-pkcs12 Modern2023), which OpenSSL 1.1.1+, NSS, macOS
// and Windows 10+ read; the legacy RC2/3DES profile is not offered.
//
// friendlyName goes into the PKCS#9 friendlyName attribute of the key bag
// and of the leaf's certificate bag: the name certificate pickers and
// keychains show, and NSS's nickname on import. It must pass
// CheckFriendlyName; FriendlyName gives a default. go-pkcs12 has no API for
// it: third_party/go-pkcs12 is a patched copy (README.certplane.md there).
func PKCS12(l *Leaf, caCerts []*x509.Certificate, password, friendlyName string) ([]byte, error) {
	if password == "" {
		return nil, errors.New("a PKCS#12 file needs a non-empty password")
	}
	if err := CheckFriendlyName(friendlyName); err != nil {
		return nil, err
	}
	data, err := pkcs12.Modern2023.WithFriendlyName(friendlyName).Encode(l.Key, l.Cert, caCerts, password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 for %q: %w", l.Cert.Subject.CommonName, err)
	}
	return data, nil
}

// FriendlyName is the default friendly name of a .p12 holding cert: what a
// user recognises in a certificate picker. It is the subject's common name,
// else the first subject alternative name (in the order Go encodes them:
// DNS, email, IP, URI), else fallback (e.g. the file's base name).
func FriendlyName(cert *x509.Certificate, fallback string) string {
	if cn := strings.TrimSpace(cert.Subject.CommonName); cn != "" {
		return cn
	}
	switch {
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	case len(cert.EmailAddresses) > 0:
		return cert.EmailAddresses[0]
	case len(cert.IPAddresses) > 0:
		return cert.IPAddresses[0].String()
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	}
	return fallback
}

// maxFriendlyName bounds a friendly name; pickers show one line.
const maxFriendlyName = 128

// CheckFriendlyName reports whether name can be a .p12 friendly name: one
// line of at most 128 characters, none outside Unicode's Basic Multilingual
// Plane (the attribute is a BMPString: UCS-2, so no emoji) and no control
// characters.
func CheckFriendlyName(name string) error {
	switch {
	case name == "":
		return errors.New("a .p12 friendly name must not be empty")
	case !utf8.ValidString(name):
		return fmt.Errorf("friendly name %q is not valid UTF-8", name)
	case utf8.RuneCountInString(name) > maxFriendlyName:
		return fmt.Errorf("friendly name %q is longer than %d characters", name, maxFriendlyName)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("friendly name %q holds a control character", name)
		}
		if r > 0xFFFF {
			return fmt.Errorf("friendly name %q holds %q, outside the Basic Multilingual Plane a PKCS#12 BMPString can hold", name, r)
		}
	}
	return nil
}
