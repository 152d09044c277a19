package xds

import (
	"encoding/hex"
	"slices"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/status"
)

// unitInfo is what /status and expiry say about one served listener unit.
// It is captured from the model when the unit is accepted, so a listener
// served from its last good version reports the certificates it actually
// serves, not the broken ones on disk.
type unitInfo struct {
	listener status.Listener
	clients  map[string]status.Certificate // upstream key pairs, by Secret name
	// trust is shared, read-only, by every unit of one update that uses the
	// store (see infoCache).
	trust map[string]*status.TrustStore // by store name
}

// infoCache builds each trust store's summary once per update: every
// listener verifying against one store of 10,000 CAs would otherwise hold
// its own copy of 10,000 certificate summaries.
type infoCache struct {
	trust map[*config.TrustStore]*status.TrustStore
}

func newInfoCache() *infoCache {
	return &infoCache{trust: map[*config.TrustStore]*status.TrustStore{}}
}

func (c *infoCache) store(ts *config.TrustStore) *status.TrustStore {
	if info, ok := c.trust[ts]; ok {
		return info
	}
	info := trustInfo(ts)
	c.trust[ts] = info
	return info
}

func infoOf(cache *infoCache, m *config.Model, l *config.Listener) unitInfo {
	in := unitInfo{
		listener: status.Listener{
			Name:       l.Name,
			Address:    l.Address,
			SourceFile: l.SourceFile,
			State:      status.StateServing,
			ClientAuth: l.ClientAuth.Mode.String(),
			TrustStore: l.ClientAuth.TrustStore,
		},
		clients: map[string]status.Certificate{},
		trust:   map[string]*status.TrustStore{},
	}
	for _, name := range l.Certificates {
		kp := m.Servers[name]
		if kp == nil || len(kp.Chain) == 0 {
			continue
		}
		c := status.CertificateOf(kp.Chain[0], kp.CertFile)
		c.Name = envoy.ServerSecretName(name)
		in.listener.Certificates = append(in.listener.Certificates, c)
	}
	stores := []string{}
	if l.ClientAuth.TrustStore != "" && l.ClientAuth.Mode.VerifiesClients() {
		stores = append(stores, l.ClientAuth.TrustStore)
	}
	backends := []string{}
	for _, r := range l.Routes {
		if !slices.Contains(backends, r.Backend) {
			backends = append(backends, r.Backend)
		}
	}
	in.listener.Backends = backends
	for _, b := range backends {
		be := m.Backends[b]
		if be == nil || be.TLS == nil {
			continue
		}
		if be.TLS.TrustStore != "" {
			stores = append(stores, be.TLS.TrustStore)
		}
		if kp := m.Clients[be.TLS.Certificate]; kp != nil && len(kp.Chain) > 0 {
			secret := envoy.ClientSecretName(kp.Name)
			c := status.CertificateOf(kp.Chain[0], kp.CertFile)
			c.Name = secret
			in.clients[secret] = c
		}
	}
	for _, s := range stores {
		ts := m.Trust[s]
		if ts == nil || in.trust[s] != nil {
			continue
		}
		in.trust[s] = cache.store(ts)
	}
	return in
}

func trustInfo(ts *config.TrustStore) *status.TrustStore {
	out := &status.TrustStore{
		Name:    ts.Name,
		State:   status.StateServing,
		CACount: len(ts.CAs),
		CAs:     []status.Certificate{},
		CRLs:    []status.CRL{},
		Files:   ts.Files,
	}
	for _, ca := range ts.CAs {
		out.CAs = append(out.CAs, status.CertificateOf(ca, ""))
	}
	for _, crl := range ts.CRLs {
		out.CRLs = append(out.CRLs, crlSummary(crl))
	}
	return out
}

// crlSummary is what the status shows of an admitted CRL: the loader's
// summary, never a parsed list.
func crlSummary(crl config.CRL) status.CRL {
	c := status.CRL{
		Issuer:     crl.Issuer,
		ThisUpdate: crl.ThisUpdate.UTC(),
		NextUpdate: crl.NextUpdate.UTC(),
		Revoked:    crl.Revoked,
		SHA256:     hex.EncodeToString(crl.SHA256[:]),
	}
	if crl.Number != nil {
		c.Number = crl.Number.String()
	}
	return c
}
