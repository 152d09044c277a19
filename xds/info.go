package xds

import (
	"crypto/x509"
	"slices"
	"strings"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/envoy"
)

// unitInfo is what /status and the expiry metrics say about one served
// listener unit. It is captured from the model when the unit is accepted, so
// a listener served from its last good version reports the certificates it
// actually serves, not the broken ones on disk.
type unitInfo struct {
	listener admin.Listener
	clients  map[string]admin.Certificate // upstream key pairs, by Secret name
	// trust is shared, read-only, by every unit of one update that uses the
	// store (see infoCache).
	trust  map[string]*admin.TrustStore // by store name
	expiry []expiry                     // the unit's own server and client certificates
	// trustExpiry holds its stores' CAs, shared read-only like trust.
	trustExpiry [][]expiry
}

// infoCache builds each trust store's status and expiry items once per
// update: every listener verifying against one store of 10,000 CAs would
// otherwise hold its own copy of 10,000 certificate summaries.
type infoCache struct {
	trust  map[*config.TrustStore]*admin.TrustStore
	expiry map[*config.TrustStore][]expiry
}

func newInfoCache() *infoCache {
	return &infoCache{trust: map[*config.TrustStore]*admin.TrustStore{}, expiry: map[*config.TrustStore][]expiry{}}
}

func (c *infoCache) store(ts *config.TrustStore) (*admin.TrustStore, []expiry) {
	if info, ok := c.trust[ts]; ok {
		return info, c.expiry[ts]
	}
	info := trustInfo(ts)
	secret := envoy.TrustSecretName(ts.Name)
	exp := make([]expiry, 0, len(ts.CAs))
	for _, ca := range ts.CAs {
		exp = append(exp, expiryOf(secret, "ca", ca))
	}
	c.trust[ts], c.expiry[ts] = info, exp
	return info, exp
}

// expiry is one certificate's end of validity, for the expiry gauge.
type expiry struct {
	secret, kind, subject, serial string
	notAfter                      int64 // Unix seconds
}

func infoOf(cache *infoCache, m *config.Model, l *config.Listener) unitInfo {
	in := unitInfo{
		listener: admin.Listener{
			Name:       l.Name,
			Address:    l.Address,
			SourceFile: l.SourceFile,
			State:      admin.StateServing,
			ClientAuth: l.ClientAuth.Mode,
			TrustStore: l.ClientAuth.TrustStore,
		},
		clients: map[string]admin.Certificate{},
		trust:   map[string]*admin.TrustStore{},
	}
	for _, name := range l.Certificates {
		kp := m.Servers[name]
		if kp == nil || len(kp.Chain) == 0 {
			continue
		}
		secret := envoy.ServerSecretName(name)
		c := admin.CertificateOf(kp.Chain[0], kp.CertFile)
		c.Name = secret
		in.listener.Certificates = append(in.listener.Certificates, c)
		in.expiry = append(in.expiry, expiryOf(secret, "server", kp.Chain[0]))
	}
	stores := []string{}
	if l.ClientAuth.TrustStore != "" && l.ClientAuth.Mode != config.ModeOff && l.ClientAuth.Mode != config.ModePassthrough {
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
			c := admin.CertificateOf(kp.Chain[0], kp.CertFile)
			c.Name = secret
			in.clients[secret] = c
			in.expiry = append(in.expiry, expiryOf(secret, "client", kp.Chain[0]))
		}
	}
	for _, s := range stores {
		ts := m.Trust[s]
		if ts == nil || in.trust[s] != nil {
			continue
		}
		info, exp := cache.store(ts)
		in.trust[s] = info
		in.trustExpiry = append(in.trustExpiry, exp)
	}
	return in
}

func trustInfo(ts *config.TrustStore) *admin.TrustStore {
	out := &admin.TrustStore{
		Name:    ts.Name,
		State:   admin.StateServing,
		CACount: len(ts.CAs),
		CAs:     []admin.Certificate{},
		CRLs:    []admin.CRL{},
		Files:   ts.Files,
	}
	for _, ca := range ts.CAs {
		out.CAs = append(out.CAs, admin.CertificateOf(ca, ""))
	}
	for _, crl := range ts.CRLs {
		c := admin.CRL{Issuer: crl.Issuer, ThisUpdate: crl.ThisUpdate.UTC(), NextUpdate: crl.NextUpdate.UTC(), Revoked: crl.Revoked}
		if crl.Number != nil {
			c.Number = crl.Number.String()
		}
		out.CRLs = append(out.CRLs, c)
	}
	return out
}

func expiryOf(secret, kind string, c *x509.Certificate) expiry {
	return expiry{
		secret:   secret,
		kind:     kind,
		subject:  c.Subject.String(),
		serial:   strings.ToLower(c.SerialNumber.Text(16)),
		notAfter: c.NotAfter.Unix(),
	}
}
