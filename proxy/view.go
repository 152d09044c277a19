package proxy

import (
	"time"

	"github.com/certplane/certplane/status"
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
			cert := status.CertificateOf(c.leaf, "")
			cert.Name = c.certName
			s.Listeners[i].Certificates = append(s.Listeners[i].Certificates, cert)
			if s.Listeners[i].ClientCertificate == "" {
				s.Listeners[i].ClientCertificate = clientCertPolicy(c)
			}
		}
	}
	inv := inventory(st)
	s.TrustStores = []status.TrustStore{}
	for _, name := range sortedKeys(inv.Stores) {
		s.TrustStores = append(s.TrustStores, *inv.Stores[name])
	}
	s.ExpiryWarningSeconds = int64(p.expiry.Threshold() / time.Second)
	s.Expiring = status.Expiring(status.Expiries(inv), now, p.expiry.Threshold())
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

// inventory describes the state's secrets for status.Expiries and the
// status's trust stores. A key pair that some listener presents is a
// server certificate; any other is a client certificate for upstream mTLS.
func inventory(st *state) status.Inventory {
	served := map[string]bool{}
	for _, ls := range st.listeners {
		for _, c := range append(append([]*chainState{}, ls.chains...), ls.def) {
			if c != nil && c.certName != "" {
				served[c.certName] = true
			}
		}
	}
	inv := status.Inventory{Stores: map[string]*status.TrustStore{}}
	for _, name := range sortedKeys(st.secrets) {
		sec := st.secrets[name]
		switch {
		case sec.keyPair != nil:
			c := status.CertificateOf(sec.keyPair.Leaf, "")
			c.Name = name
			if served[name] {
				inv.Servers = append(inv.Servers, c)
			} else {
				inv.Clients = append(inv.Clients, c)
			}
		case sec.vc != nil:
			ts := &status.TrustStore{Name: name, State: status.StateServing, CACount: len(sec.roots), CAs: []status.Certificate{}, CRLs: []status.CRL{}}
			for _, ca := range sec.roots {
				ts.CAs = append(ts.CAs, status.CertificateOf(ca, ""))
			}
			for _, rl := range sec.crls.Info() {
				ts.CRLs = append(ts.CRLs, status.CRL{Issuer: rl.Issuer, Number: rl.Number,
					ThisUpdate: rl.ThisUpdate.UTC(), NextUpdate: rl.NextUpdate.UTC(), Revoked: rl.Revoked})
			}
			inv.Stores[name] = ts
		}
	}
	return inv
}
