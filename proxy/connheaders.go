package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"sync"

	"github.com/certplane/certplane/proxy/mtls"
)

// maxCachedFormats bounds the header formats remembered per connection; a
// connection that outlives many route updates starts its map afresh.
const maxCachedFormats = 32

// peerValues caches, per downstream connection, what requests derive from
// the peer's certificate chain: the XFCC value, the expanded
// request_headers_to_add formats (every command is a %DOWNSTREAM_PEER_*%
// one, so the value depends on the connection only) and the request log's
// peer fields. The chain is fixed by the handshake: a recheck may close the
// connection, never change its chain. Rendering XFCC PEM-encodes,
// URL-encodes and re-parses the certificate, which on keep-alive traffic
// cost about 10% of the CPU when done per request. HTTP/2 streams of one
// connection run concurrently, hence the mutex.
type peerValues struct {
	mu sync.Mutex
	// xfccBy is the local certificate xfcc was rendered for (its URI SANs
	// are XFCC's By=); a server-certificate rotation changes it.
	xfccBy      *x509.Certificate
	xfccFields  mtls.XFCCFields
	xfcc        string
	xfccSet     bool
	expanded    map[string]string // format → value
	subject     string
	serial      string
	logFieldSet bool
}

// xfccValue is mtls.XFCCWith(local, peer, f), computed once per
// connection, local certificate and field set. c may be nil (no tracked
// connection): no caching.
func (c *trackedConn) xfccValue(local *x509.Certificate, peer []*x509.Certificate, f mtls.XFCCFields) string {
	if c == nil {
		return mtls.XFCCWith(local, peer, f)
	}
	pv := &c.peerValues
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if !pv.xfccSet || pv.xfccBy != local || pv.xfccFields != f {
		pv.xfcc, pv.xfccBy, pv.xfccFields, pv.xfccSet = mtls.XFCCWith(local, peer, f), local, f, true
	}
	return pv.xfcc
}

// expandHeader is mtls.ExpandHeaderFormat(format, cs), once per connection
// and format. Errors (a format the route check should have refused) are
// not cached.
func (c *trackedConn) expandHeader(format string, cs *tls.ConnectionState) (string, error) {
	if c == nil {
		return mtls.ExpandHeaderFormat(format, cs)
	}
	pv := &c.peerValues
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if v, ok := pv.expanded[format]; ok {
		return v, nil
	}
	v, err := mtls.ExpandHeaderFormat(format, cs)
	if err != nil {
		return "", err
	}
	if pv.expanded == nil || len(pv.expanded) >= maxCachedFormats {
		pv.expanded = map[string]string{}
	}
	pv.expanded[format] = v
	return v, nil
}

// peerLogFields are the request log's peer_subject and peer_serial of leaf.
func (c *trackedConn) peerLogFields(leaf *x509.Certificate) (subject, serial string) {
	if c == nil {
		return leaf.Subject.String(), serialHex(leaf)
	}
	pv := &c.peerValues
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if !pv.logFieldSet {
		pv.subject, pv.serial, pv.logFieldSet = leaf.Subject.String(), serialHex(leaf), true
	}
	return pv.subject, pv.serial
}
