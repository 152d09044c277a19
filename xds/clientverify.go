package xds

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/crl"
)

// Why an xDS client is refused: the data plane's words (proxy/mtls
// Reason), so logs read the same on both sides.
const (
	reasonNoCertificate = "no_certificate"
	reasonUnknownCA     = "unknown_ca"
	reasonExpired       = "expired"
	reasonBadCert       = "bad_certificate"
	reasonRevoked       = "revoked"
	reasonCRLMissing    = "crl_missing"
	reasonCRLExpired    = "crl_expired"
)

// authFailure is a refused xDS client: a reason and what happened.
type authFailure struct {
	reason string
	err    error
}

func (f *authFailure) Error() string { return f.reason + ": " + f.err.Error() }

// clientVerifier checks xDS client chains with crypto/x509 and, when the
// store has CRLs, every certificate of the chain but the anchor against
// the CRL of its issuer (Envoy's full-chain checking; an expired CRL fails
// closed). CRLs are indexed from the streaming parser (package crl) and
// were admitted by config with crl.Admit: the serials are all it keeps.
type clientVerifier struct {
	roots *x509.CertPool
	crls  []clientCRL // empty: no revocation checking
	now   func() time.Time
}

// clientCRL is one admitted CRL: its issuer (name and key) and serials.
type clientCRL struct {
	rawIssuer  []byte
	issuerKey  [32]byte // SHA-256 of the issuing CA's SubjectPublicKeyInfo
	thisUpdate time.Time
	nextUpdate time.Time
	revoked    map[string]struct{} // crl.Entry.Serial form
}

// newClientVerifier builds the verifier of an admitted trust store.
func newClientVerifier(ts *config.TrustStore, now func() time.Time) (*clientVerifier, error) {
	v := &clientVerifier{roots: x509.NewCertPool(), now: now}
	for _, ca := range ts.CAs {
		v.roots.AddCert(ca)
	}
	for _, pem := range ts.CRLPEM.Chunks() {
		if err := v.addCRLs(ts, pem, now); err != nil {
			return nil, fmt.Errorf("CRLs: %w", err)
		}
	}
	return v, nil
}

// addCRLs adds the CRLs of one PEM chunk of the store's bundle.
func (v *clientVerifier) addCRLs(ts *config.TrustStore, pem []byte, now func() time.Time) error {
	return crl.Blocks(pem, func(b crl.Block) error {
		c := clientCRL{revoked: map[string]struct{}{}}
		s, err := crl.Parse(b.DER, func(e crl.Entry) error {
			c.revoked[string(e.Serial)] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
		// Admitted by config already: this finds which CA issued it.
		issuer, _, err := crl.Admit(s, ts.CAs, now())
		if err != nil {
			return err
		}
		c.rawIssuer, c.issuerKey = s.RawIssuer, sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
		c.thisUpdate, c.nextUpdate = s.ThisUpdate, s.NextUpdate
		v.crls = append(v.crls, c)
		return nil
	})
}

// ClientAuth: an xDS client must present a certificate.
func (v *clientVerifier) clientAuth() tls.ClientAuthType { return tls.RequireAnyClientCert }

// verify checks a peer chain as presented (leaf first). Nil accepts.
func (v *clientVerifier) verify(peer []*x509.Certificate) *authFailure {
	if len(peer) == 0 || peer[0] == nil {
		return &authFailure{reasonNoCertificate, errors.New("the client sent no certificate")}
	}
	now := v.now()
	inters := x509.NewCertPool()
	for _, c := range peer[1:] {
		inters.AddCert(c)
	}
	chains, err := peer[0].Verify(x509.VerifyOptions{
		Roots: v.roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return chainFailure(err)
	}
	if len(v.crls) == 0 {
		return nil
	}
	var last *authFailure
	for _, ch := range chains {
		if f := v.checkCRLs(ch, now); f == nil {
			return nil
		} else if last == nil {
			last = f
		}
	}
	return last
}

// checkCRLs checks every certificate of a verified chain but the anchor.
func (v *clientVerifier) checkCRLs(chain []*x509.Certificate, now time.Time) *authFailure {
	now = now.Truncate(time.Second) // BoringSSL compares whole seconds
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		key := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
		var best *clientCRL
		for j := range v.crls {
			c := &v.crls[j]
			if c.issuerKey == key && bytes.Equal(c.rawIssuer, cert.RawIssuer) && (best == nil || c.thisUpdate.After(best.thisUpdate)) {
				best = c
			}
		}
		switch {
		case best == nil:
			return &authFailure{reasonCRLMissing, fmt.Errorf("no CRL from issuer %q covers %q", cert.Issuer, cert.Subject)}
		case now.Before(best.thisUpdate):
			return &authFailure{reasonCRLExpired, fmt.Errorf("CRL of %q is not valid before %s", cert.Issuer, best.thisUpdate.UTC().Format(time.RFC3339))}
		case !best.nextUpdate.IsZero() && now.After(best.nextUpdate):
			return &authFailure{reasonCRLExpired, fmt.Errorf("CRL of %q expired at %s", cert.Issuer, best.nextUpdate.UTC().Format(time.RFC3339))}
		}
		if _, revoked := best.revoked[string(crl.AppendSerial(nil, cert.SerialNumber))]; revoked {
			return &authFailure{reasonRevoked, fmt.Errorf("certificate %q serial %x is revoked by the CRL of %q", cert.Subject, cert.SerialNumber, cert.Issuer)}
		}
	}
	return nil
}

// chainFailure names an x509 verification error.
func chainFailure(err error) *authFailure {
	var inv x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return &authFailure{reasonExpired, err}
	case errors.As(err, &unknown):
		return &authFailure{reasonUnknownCA, err}
	}
	return &authFailure{reasonBadCert, err}
}
