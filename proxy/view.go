package proxy

import (
	"time"

	"github.com/certplane/certplane/admin"
)

// Client certificate policies of a listener, as the proxy applies them.
const (
	ClientCertRequired     = "required"
	ClientCertOptional     = "optional"
	ClientCertNotRequested = "not_requested"
)

// addView completes s with what an operator's page shows and the xDS
// resources alone tell: the certificates each listener presents, the trust
// stores, expiring items and the handshake history. It is what the page
// shows when the proxy is fed by a remote control plane.
func (p *Proxy) addView(s *Status, st *state, now time.Time) {
	for i := range s.Listeners {
		ls := st.listeners[s.Listeners[i].Name]
		if ls == nil {
			continue
		}
		chains := append([]*chainState{}, ls.chains...)
		if ls.def != nil {
			chains = append(chains, ls.def)
		}
		seen := map[string]bool{}
		for _, c := range chains {
			if c.leaf == nil || seen[c.certName] {
				continue
			}
			seen[c.certName] = true
			cert := admin.CertificateOf(c.leaf, "")
			cert.Name = c.certName
			s.Listeners[i].Certificates = append(s.Listeners[i].Certificates, cert)
			if s.Listeners[i].ClientCertificate == "" {
				s.Listeners[i].ClientCertificate = clientCertPolicy(c)
			}
		}
	}
	s.TrustStores = []admin.TrustStore{}
	for _, name := range sortedKeys(st.secrets) {
		sec := st.secrets[name]
		if sec.vc == nil {
			continue
		}
		ts := admin.TrustStore{Name: name, State: admin.StateServing, CACount: len(sec.roots), CAs: []admin.Certificate{}, CRLs: []admin.CRL{}}
		for _, ca := range sec.roots {
			ts.CAs = append(ts.CAs, admin.CertificateOf(ca, ""))
		}
		for _, rl := range sec.crls.Info() {
			// admin.CRLOf's fields, from the reduced parse.
			ts.CRLs = append(ts.CRLs, admin.CRL{Issuer: rl.Issuer, Number: rl.Number,
				ThisUpdate: rl.ThisUpdate.UTC(), NextUpdate: rl.NextUpdate.UTC(), Revoked: rl.Revoked})
		}
		s.TrustStores = append(s.TrustStores, ts)
	}
	items := p.expiryItems(st)
	admin.Classify(items, now, p.expiry.Threshold())
	s.ExpiryWarningSeconds = int64(p.expiry.Threshold() / time.Second)
	s.Expiring = []admin.Expiry{}
	for _, it := range items {
		if it.State != admin.ExpiryOK {
			s.Expiring = append(s.Expiring, it)
		}
	}
	s.Handshakes = p.handshakes.history(now)
}

func clientCertPolicy(c *chainState) string {
	switch {
	case c.verifier == nil || c.tls == nil || c.tls.ClientAuth == 0:
		return ClientCertNotRequested
	case c.verifier.Mandatory():
		return ClientCertRequired
	}
	return ClientCertOptional
}

// expiryItems lists the certificates and CRLs of the state's secrets. A key
// pair that some listener presents is a server certificate; any other is a
// client certificate for upstream mTLS.
func (p *Proxy) expiryItems(st *state) []admin.Expiry {
	served := map[string]bool{}
	for _, ls := range st.listeners {
		for _, c := range append(append([]*chainState{}, ls.chains...), ls.def) {
			if c != nil && c.certName != "" {
				served[c.certName] = true
			}
		}
	}
	var out []admin.Expiry
	for name, sec := range st.secrets {
		switch {
		case sec.keyPair != nil:
			kind := admin.KindClient
			if served[name] {
				kind = admin.KindServer
			}
			out = append(out, admin.Expiry{Kind: kind, Name: name, Subject: sec.keyPair.Leaf.Subject.String(), At: sec.keyPair.Leaf.NotAfter})
		case sec.vc != nil:
			for _, ca := range sec.roots {
				out = append(out, admin.Expiry{Kind: admin.KindCA, Name: name, Subject: ca.Subject.String(), At: ca.NotAfter})
			}
			for _, rl := range sec.crls.Info() {
				if !rl.NextUpdate.IsZero() {
					out = append(out, admin.Expiry{Kind: admin.KindCRL, Name: name, Subject: rl.Issuer, At: rl.NextUpdate})
				}
			}
		}
	}
	// Two CAs or CRLs of one store may share a subject: keep the earliest,
	// so the key (and the metric's labels) stay unique.
	admin.SortExpiries(out)
	seen := map[string]bool{}
	uniq := out[:0]
	for _, e := range out {
		if !seen[e.Key()] {
			seen[e.Key()] = true
			uniq = append(uniq, e)
		}
	}
	return uniq
}
