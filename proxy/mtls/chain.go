package mtls

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// maxTimeProbes bounds the extra path builds allow_expired_certificate and
// expiry classification may cost on one handshake.
const maxTimeProbes = 8

func (v *Verifier) verifyChain(peer []*x509.Certificate) *Failure {
	leaf := peer[0]
	if weakSignature(leaf) {
		return fail(ReasonBadSignatureAlgorithm, fmt.Errorf("certificate %q is signed with %v", rfc2253(leaf.RawSubject), leaf.SignatureAlgorithm))
	}
	// BoringSSL's ssl_client purpose: a key usage, if present, must allow
	// digitalSignature or keyAgreement.
	if hasExtension(leaf, oidKeyUsage) && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement) == 0 {
		return fail(ReasonBadKeyUsage, fmt.Errorf("certificate %q key usage allows neither digitalSignature nor keyAgreement", rfc2253(leaf.RawSubject)))
	}
	// BoringSSL compares times in whole seconds (time_t).
	now := v.now().Truncate(time.Second)
	// Path building and signature checks depend only on the presented
	// bytes, this Verifier's roots and the time: a chain verified before
	// is reused while now stays inside its validity window. Everything
	// below (depth, CA key usage, CRLs) runs on every handshake.
	key := chainKey(peer)
	chains := v.chains.get(key, now)
	if chains == nil {
		var f *Failure
		if chains, f = v.buildChains(leaf, peer, now, key); f != nil {
			return f
		}
	}
	var keep [][]*x509.Certificate
	for _, ch := range chains {
		if len(ch)-1 <= v.maxDepth && caKeyUsageOK(ch) {
			keep = append(keep, ch)
		}
	}
	if len(keep) == 0 {
		if !caKeyUsageOK(chains[0]) {
			// BoringSSL: X509_check_ca fails, X509_V_ERR_INVALID_CA.
			return failAlert(ReasonBadKeyUsage, AlertUnknownCA, errors.New("a CA of the path lacks the keyCertSign key usage"))
		}
		return fail(ReasonDepthExceeded, fmt.Errorf("every path to a trust anchor is longer than max_verify_depth %d (shortest has %d CA certificates)", v.maxDepth, shortest(chains)-1))
	}
	// Prefer the path BoringSSL builds: up to a self-signed root when the
	// store holds one, the longest first.
	slices.SortStableFunc(keep, func(a, b []*x509.Certificate) int {
		ca, cb := selfIssued(a[len(a)-1]), selfIssued(b[len(b)-1])
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return len(b) - len(a)
	})
	if !v.crlCheck {
		return nil
	}
	var first *Failure
	for _, ch := range keep {
		f := v.checkCRLs(ch, now)
		if f == nil {
			return nil
		}
		if first == nil {
			first = f
		}
	}
	return first
}

// buildChains builds and verifies the paths from leaf to a trust anchor at
// now, and caches them when they verify as they are (not through
// allow_expired_certificate's time probes: those are rare and not cached).
func (v *Verifier) buildChains(leaf *x509.Certificate, peer []*x509.Certificate, now time.Time, key [32]byte) ([][]*x509.Certificate, *Failure) {
	inters := v.inters.Clone()
	for _, c := range peer[1:] {
		if c != nil {
			inters.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Roots: v.roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{v.keyUsage}}
	chains, err := leaf.Verify(opts)
	if err == nil {
		v.chains.put(key, chains)
		return chains, nil
	}
	if !timeMayExplain(err) {
		return nil, classify(err, peer, now)
	}
	tchains, terr := v.verifyIgnoringTime(leaf, peer, opts)
	if tchains == nil {
		tchains = v.buildIgnoringTime(leaf, peer)
	}
	switch {
	case tchains == nil && terr != nil:
		return nil, classify(terr, peer, now)
	case tchains == nil:
		return nil, classify(err, peer, now)
	case !v.allowExpired:
		return nil, timeFailure(tchains[0], now)
	}
	return tchains, nil
}

// checkCRLs applies CRL_CHECK (leaf) or CRL_CHECK|CRL_CHECK_ALL (every
// certificate, the anchor included) along one path, leaf first.
func (v *Verifier) checkCRLs(ch []*x509.Certificate, now time.Time) *Failure {
	last := len(ch) - 1
	upto := last
	if v.leafOnlyCRL {
		upto = 0
	}
	for i := 0; i <= upto; i++ {
		var issuer *x509.Certificate
		switch {
		case i < last:
			issuer = ch[i+1]
		case selfIssued(ch[i]):
			issuer = ch[i]
		default:
			return fail(ReasonCRLMissing, fmt.Errorf("the path ends at %q, whose issuer is not trusted, so its CRL cannot be checked", rfc2253(ch[i].RawSubject)))
		}
		if f := v.crls.checkCert(ch[i], issuer, now, !v.allowExpired); f != nil {
			return f
		}
	}
	return nil
}

// verifyIgnoringTime builds paths as if time were not checked
// (X509_V_FLAG_NO_CHECK_TIME): it probes the validity bounds of the
// certificates the leaf may chain through, nearest to now first, within the
// leaf's own validity. It returns the chains, or the error of the first probe.
func (v *Verifier) verifyIgnoringTime(leaf *x509.Certificate, peer []*x509.Certificate, opts x509.VerifyOptions) ([][]*x509.Certificate, error) {
	now := opts.CurrentTime
	var times []time.Time
	for _, c := range v.reachable(leaf, peer) {
		for _, t := range []time.Time{c.NotBefore, c.NotAfter} {
			if !t.Before(leaf.NotBefore) && !t.After(leaf.NotAfter) && !slices.ContainsFunc(times, t.Equal) {
				times = append(times, t)
			}
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int {
		return int(absDur(a.Sub(now))/time.Second) - int(absDur(b.Sub(now))/time.Second)
	})
	var firstErr error
	for i, t := range times {
		if i == maxTimeProbes {
			break
		}
		opts.CurrentTime = t
		chains, err := leaf.Verify(opts)
		if err == nil {
			return chains, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// reachable lists the leaf and the certificates that may issue it,
// transitively by name, among the peer's and the trusted ones (bounded).
func (v *Verifier) reachable(leaf *x509.Certificate, peer []*x509.Certificate) []*x509.Certificate {
	const limit = 16
	out := []*x509.Certificate{leaf}
	for i := 0; i < len(out) && len(out) < limit; i++ {
		c := out[i]
		if selfIssued(c) {
			continue
		}
		cands := append([]*x509.Certificate{}, v.bySubject[string(c.RawIssuer)]...)
		for _, p := range peer[1:] {
			if p != nil && bytes.Equal(p.RawSubject, c.RawIssuer) {
				cands = append(cands, p)
			}
		}
		for _, p := range cands {
			if len(out) < limit && !slices.ContainsFunc(out, p.Equal) {
				out = append(out, p)
			}
		}
	}
	return out
}

// timeMayExplain: an expired leaf, or no path at all (crypto/x509 reports an
// expired intermediate or root as an unknown authority).
func timeMayExplain(err error) bool {
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		return cie.Reason == x509.Expired
	}
	var uae x509.UnknownAuthorityError
	return errors.As(err, &uae)
}

func timeFailure(ch []*x509.Certificate, now time.Time) *Failure {
	for _, c := range ch {
		name := rfc2253(c.RawSubject)
		if now.Before(c.NotBefore) {
			return fail(ReasonNotYetValid, fmt.Errorf("certificate %q is not valid before %s", name, c.NotBefore.UTC().Format(time.RFC3339)))
		}
		if now.After(c.NotAfter) {
			return fail(ReasonExpired, fmt.Errorf("certificate %q expired at %s", name, c.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	return fail(ReasonExpired, errors.New("a certificate of the path is outside its validity period"))
}

func classify(err error, peer []*x509.Certificate, now time.Time) *Failure {
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		switch cie.Reason {
		case x509.Expired:
			if cie.Cert != nil && now.Before(cie.Cert.NotBefore) {
				return fail(ReasonNotYetValid, err)
			}
			return fail(ReasonExpired, err)
		case x509.IncompatibleUsage, x509.CANotAuthorizedForExtKeyUsage:
			return fail(ReasonBadKeyUsage, err)
		case x509.CANotAuthorizedForThisName, x509.UnconstrainedName, x509.TooManyConstraints:
			// X509_V_ERR_PERMITTED_VIOLATION and its kin have no alert of
			// their own: certificate_unknown.
			return failAlert(ReasonUnknownCA, AlertCertificateUnknown, err)
		}
		return fail(ReasonUnknownCA, err)
	}
	if errors.As(err, new(x509.UnhandledCriticalExtension)) {
		// X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION: certificate_unknown.
		return failAlert(ReasonUnknownCA, AlertCertificateUnknown, err)
	}
	var iae x509.InsecureAlgorithmError
	if errors.As(err, &iae) {
		return fail(ReasonBadSignatureAlgorithm, err)
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		for _, c := range peer[1:] {
			if c != nil && weakSignature(c) && !selfIssued(c) {
				return fail(ReasonBadSignatureAlgorithm, fmt.Errorf("chain certificate %q is signed with %v: %w", rfc2253(c.RawSubject), c.SignatureAlgorithm, err))
			}
		}
	}
	return fail(ReasonUnknownCA, err)
}

func weakSignature(c *x509.Certificate) bool {
	switch c.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// selfIssued is BoringSSL's self-signed test without the signature: same
// name, and matching key identifiers when both are present.
func selfIssued(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		(len(c.AuthorityKeyId) == 0 || len(c.SubjectKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId))
}

// caKeyUsageOK: every CA of the path that has a key usage allows
// keyCertSign (BoringSSL check_ca); crypto/x509 does not check it.
func caKeyUsageOK(ch []*x509.Certificate) bool {
	for _, c := range ch[1:] {
		if hasExtension(c, oidKeyUsage) && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return false
		}
	}
	return true
}

func shortest(chains [][]*x509.Certificate) int {
	n := len(chains[0])
	for _, c := range chains {
		n = min(n, len(c))
	}
	return n
}
