package mtls

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"slices"
)

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

// maxNoTimeSigChecks bounds the signature checks of buildIgnoringTime.
const maxNoTimeSigChecks = 32

// buildIgnoringTime finds paths from leaf to a trusted certificate with no
// time check at all (X509_V_FLAG_NO_CHECK_TIME). It is the fallback when no
// single instant lies inside every validity period of a path, which
// crypto/x509 needs (an expired leaf under a re-issued CA). It checks what
// crypto/x509 would, other than time: signatures and CA constraints
// (CheckSignatureFrom), unhandled critical extensions, path length and EKU
// nesting. A CA with name constraints is refused here, fail-closed, because
// they are not evaluated.
func (v *Verifier) buildIgnoringTime(leaf *x509.Certificate, peer []*x509.Certificate) [][]*x509.Certificate {
	var chains [][]*x509.Certificate
	checks := 0
	var walk func(chain []*x509.Certificate)
	walk = func(chain []*x509.Certificate) {
		cur := chain[len(chain)-1]
		if v.isTrusted(cur) {
			chains = append(chains, slices.Clone(chain))
		}
		if len(chain) > v.maxDepth || selfIssued(cur) {
			return
		}
		var cands []*x509.Certificate
		cands = append(cands, v.bySubject[string(cur.RawIssuer)]...)
		for _, p := range peer[1:] {
			if p != nil && bytes.Equal(p.RawSubject, cur.RawIssuer) && !slices.ContainsFunc(cands, p.Equal) {
				cands = append(cands, p)
			}
		}
		for _, c := range cands {
			if slices.ContainsFunc(chain, c.Equal) || checks >= maxNoTimeSigChecks {
				continue
			}
			checks++
			if cur.CheckSignatureFrom(c) != nil {
				continue
			}
			walk(append(chain, c))
		}
	}
	walk([]*x509.Certificate{leaf})
	var ok [][]*x509.Certificate
	for _, ch := range chains {
		if v.constraintsOK(ch) {
			ok = append(ok, ch)
		}
	}
	return ok
}

func (v *Verifier) isTrusted(c *x509.Certificate) bool {
	return slices.ContainsFunc(v.bySubject[string(c.RawSubject)], c.Equal)
}

func (v *Verifier) constraintsOK(ch []*x509.Certificate) bool {
	for i, c := range ch {
		if len(c.UnhandledCriticalExtensions) > 0 {
			return false
		}
		if !ekuAllows(c, v.keyUsage) {
			return false
		}
		if i == 0 {
			continue
		}
		if hasExtension(c, oidNameConstraints) {
			return false
		}
		// Intermediates below c (excluding the leaf, skipping self-issued).
		if c.BasicConstraintsValid && (c.MaxPathLen > 0 || c.MaxPathLenZero) {
			below := 0
			for _, d := range ch[1:i] {
				if !selfIssued(d) {
					below++
				}
			}
			if below > c.MaxPathLen {
				return false
			}
		}
	}
	return true
}

func ekuAllows(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
