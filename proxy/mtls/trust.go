package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/certplane/certplane/pemder"
)

// loadTrustedCA reads trusted_ca as Envoy does (PEM_X509_INFO_read_bio):
// every CERTIFICATE is an anchor and every X509 CRL is loaded too.
func (v *Verifier) loadTrustedCA(data []byte) error {
	v.roots = x509.NewCertPool()
	v.inters = x509.NewCertPool()
	v.clientCAs = x509.NewCertPool()
	v.bySubject = map[string][]*x509.Certificate{}
	advertised := map[string]bool{}
	hasCRL := false
	err := pemder.Lenient(data, func(i int, block pemder.Block) error {
		switch block.Type {
		case pemder.TypeCertificate:
			c, err := x509.ParseCertificate(block.DER)
			if err != nil {
				return fmt.Errorf("validation context: trusted_ca: PEM block %d: %w", i, err)
			}
			v.roots.AddCert(c)
			v.inters.AddCert(c)
			v.bySubject[string(c.RawSubject)] = append(v.bySubject[string(c.RawSubject)], c)
			if !advertised[string(c.RawSubject)] {
				advertised[string(c.RawSubject)] = true
				v.clientCAs.AddCert(c)
			}
			v.hasCA = true
		case pemder.TypeCRL:
			c, err := newCRL(block.DER)
			if err != nil {
				return fmt.Errorf("validation context: trusted_ca: PEM block %d: %w", i, err)
			}
			v.crls.add(c)
			hasCRL = true
		default:
			return fmt.Errorf("validation context: trusted_ca: PEM block %d has type %q; want CERTIFICATE or X509 CRL", i, block.Type)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !v.hasCA {
		return errors.New("validation context: Failed to load trusted CA certificates from <inline>: no CERTIFICATE PEM block")
	}
	if hasCRL {
		v.crlCheck = true
	}
	return nil
}

func (v *Verifier) loadCRLs(data []byte, field string) error {
	n := 0
	start := v.crls.snapshot()
	err := pemder.Stream(data, func() { v.crls.restore(start); n = 0 }, func(i int, block pemder.Block) error {
		if block.Type != pemder.TypeCRL {
			return fmt.Errorf("validation context: %s: PEM block %d has type %q; want X509 CRL", field, i, block.Type)
		}
		c, err := newCRL(block.DER)
		if err != nil {
			return fmt.Errorf("validation context: %s: PEM block %d: %w", field, i, err)
		}
		v.crls.add(c)
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("validation context: Failed to load CRL from <inline>: no X509 CRL PEM block")
	}
	return nil
}

// checkCRLSigners admits, at load time, each CRL issued under the name of a
// trusted CA (crl.Admit, as config does): one of the CAs of that name must
// have issued it. A CRL of an intermediate the client sends is checked
// against it at handshake time.
func (v *Verifier) checkCRLSigners() error {
	for issuer, list := range v.crls.byIssuer {
		cas := v.bySubject[issuer]
		if len(cas) == 0 {
			continue
		}
		for _, c := range list {
			if err := c.settle(cas, v.now()); err != nil {
				return fmt.Errorf("validation context: CRL of %q: signature does not verify against any trusted CA of that name", c.issuerName)
			}
		}
	}
	return nil
}
