package proxy

import (
	"crypto/tls"
	"net/http"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// forwardClientCert applies forward_client_cert_details to the upstream
// headers h as Envoy's ConnectionManagerUtility::mutateXfccRequestHeader
// does:
//   - SANITIZE, or any mode but ALWAYS_FORWARD_ONLY (never emitted, NACKed)
//     when the client presented no certificate: the header is removed;
//   - FORWARD_ONLY: the client's header goes on unchanged;
//   - SANITIZE_SET: replaced with this hop's element;
//   - APPEND_FORWARD: this hop's element appended after a ','.
//
// Several XFCC lines from the client reach the backend joined with ',' in
// one, as Envoy's header map keeps this inline header.
func (ex *exchange) forwardClientCert(h http.Header, cs *tls.ConnectionState) {
	mode := ex.chain.hcm.xfcc
	presented := cs != nil && len(cs.PeerCertificates) > 0
	vals, sent := h[xfccHeader]
	prior := strings.Join(vals, ",")
	h.Del(xfccHeader)
	if mode == hcmv3.HttpConnectionManager_SANITIZE || !presented {
		return
	}
	if mode == hcmv3.HttpConnectionManager_FORWARD_ONLY {
		if sent {
			h.Set(xfccHeader, prior)
		}
		return
	}
	cur := ex.conn.xfccValue(ex.chain.leaf, cs.PeerCertificates, ex.chain.hcm.xfccFields)
	if mode == hcmv3.HttpConnectionManager_APPEND_FORWARD && prior != "" {
		cur = prior + "," + cur
	}
	h.Set(xfccHeader, cur)
}
