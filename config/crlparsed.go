package config

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certplane/certplane/crl"
	"github.com/certplane/certplane/pemder"
)

// parsedCRL is one CRL of a trust file after crl.Parse: its summary, the
// PEM it is served as, and the last verdict of crl.Admit. It never holds
// the entries: the DER (and the summary's aliases into it) live only until
// the admission that parsed it ends (release); the parse cache, the last
// good content of a file and the newest CRL of a CA then share the summary
// and the PEM.
type parsedCRL struct {
	sum *crl.Summary

	mu  sync.Mutex
	der []byte // nil once released
	pem []byte // set by release or pemBytes
	// The verdict of crl.Admit for the CAs named like the issuer, keyed by
	// their hashes: an unchanged store needs no signature check again.
	vkey    string
	vissuer *x509.Certificate
	verr    error
}

func newParsedCRL(der []byte) (*parsedCRL, error) {
	s, err := crl.Parse(der, nil)
	if err != nil {
		return nil, err
	}
	return &parsedCRL{sum: s, der: der}, nil
}

// admit is crl.Admit against cands, the CAs of the store whose subject is
// the CRL's issuer, remembered until the candidates change. Time is not
// part of the verdict: checkCRL and checkDates read the dates each load.
func (c *parsedCRL) admit(cands []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	h := sha256.New()
	for _, ca := range cands {
		sum := sha256.Sum256(ca.Raw)
		h.Write(sum[:])
	}
	key := string(h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vkey == key {
		return c.vissuer, c.verr
	}
	s := c.sum
	if s.RawTBSRevocationList == nil {
		// Released, and the store's CAs of that name changed: parse the
		// bytes served again to check the signature (rare: a CA re-issued).
		der, err := c.derLocked()
		if err != nil {
			return nil, err
		}
		if s, err = crl.Parse(der, nil); err != nil {
			return nil, err
		}
	}
	issuer, _, err := crl.Admit(s, cands, now)
	if errors.Is(err, crl.ErrAKIMismatch) {
		// A CRL of another key under the CA's name usually fails both
		// checks: say what operators know, the signature.
		for _, ca := range cands {
			if e := s.CheckSignatureFrom(ca); errors.Is(e, crl.ErrSignature) {
				err = fmt.Errorf("%w: %w", crl.ErrNoIssuer, e)
				break
			}
		}
	}
	c.vkey, c.vissuer, c.verr = key, issuer, err
	return issuer, err
}

// derBytes returns the DER, decoding the PEM again once released.
func (c *parsedCRL) derBytes() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.derLocked()
}

func (c *parsedCRL) derLocked() ([]byte, error) {
	if c.der != nil {
		return c.der, nil
	}
	bs, err := pemder.Decode(c.pem)
	if err != nil || len(bs) != 1 {
		return nil, errors.New("CRL bytes lost") // cannot happen: pem is set before der is dropped
	}
	return bs[0].DER, nil
}

// pemBytes is the CRL's PEM as served.
func (c *parsedCRL) pemBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pem == nil {
		c.pem = pemder.Encode(pemder.TypeCRL, c.der)
	}
	return c.pem
}

// release drops the DER and the summary's aliases into it once admission
// is done: what is kept is the summary and the PEM.
func (c *parsedCRL) release() {
	c.pemBytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.der = nil
	c.sum.Release()
}

// model is the summary the model keeps.
func (c *parsedCRL) model(file string) CRL {
	s := c.sum
	return CRL{
		Issuer: s.Issuer, RawIssuer: s.RawIssuer, Number: s.Number,
		ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate,
		Revoked: s.Entries, SHA256: s.SHA256, File: file,
	}
}
