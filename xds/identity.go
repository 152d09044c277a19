package xds

import (
	"context"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// NodeIdentities are the node ids a client certificate may claim when the
// control plane binds node ids to certificates (Options.BindNodeID,
// --xds-bind-node-id):
//
//   - each URI SAN, as written (spiffe://trust-domain/path);
//   - each DNS SAN (compared without regard to ASCII case);
//   - the subject common name, only when the certificate has neither a URI
//     nor a DNS SAN, as `certplane pki client --name NAME` issues them.
//
// A common name is ignored beside SANs, as TLS name checks do: it is free
// text that any issuing process may fill in.
func NodeIdentities(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	ids = append(ids, cert.DNSNames...)
	if len(ids) == 0 && cert.Subject.CommonName != "" {
		ids = append(ids, cert.Subject.CommonName)
	}
	return ids
}

// nodeBound reports whether node id is one of cert's identities.
func nodeBound(id string, cert *x509.Certificate) bool {
	if id == "" {
		return false
	}
	for _, u := range cert.URIs {
		if u.String() == id {
			return true
		}
	}
	for _, d := range cert.DNSNames {
		if strings.EqualFold(d, id) {
			return true
		}
	}
	return len(cert.URIs) == 0 && len(cert.DNSNames) == 0 && cert.Subject.CommonName == id
}

// peerCert is the verified client certificate of the connection behind
// ctx, nil without TLS or without a client certificate.
func peerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil
	}
	return ti.State.PeerCertificates[0]
}
