package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/proxy/ocspcheck"
	"github.com/certplane/certplane/xds/client"
)

// state is one immutable view of everything the proxy serves, built from one
// set of accepted xDS resources. It is swapped atomically as a whole, so a
// handshake or a request never sees a certificate from one version and a
// verifier or route from another. Hosts carry mutable health (atomics); the
// set of hosts and everything else is fixed once published.
type state struct {
	listeners map[string]*listenerState
	routes    map[string]*routeTable
	clusters  map[string]*clusterState
	secrets   map[string]*secret
	// warming names, per listener, the resources it waits for; a warming
	// listener serves its previous version, or is not started.
	warming map[string]string
	// verifiers caches verifiers by their inputs, so an update that leaves a
	// validation context unchanged keeps the same *Verifier and live
	// connections are not rechecked for nothing.
	verifiers map[string]*mtls.Verifier
	res       client.Resources
}

func emptyState() *state {
	return &state{
		listeners: map[string]*listenerState{},
		routes:    map[string]*routeTable{},
		clusters:  map[string]*clusterState{},
		secrets:   map[string]*secret{},
		warming:   map[string]string{},
		verifiers: map[string]*mtls.Verifier{},
	}
}

// listenerState is one listener's serving configuration.
type listenerState struct {
	name    string
	address string // host:port to bind
	// hash identifies the listener proto; an unchanged listener is not rebuilt.
	hash   string
	chains []*chainState
	exact  map[string]*chainState // server name -> chain
	// wildcards maps a "*.suffix" server name's ".suffix" to its chain.
	wildcards map[string]*chainState
	catchAll  *chainState // a chain with no server_names
	def       *chainState // default_filter_chain
	// server holds the HTTP server-level settings (timeouts, header limit,
	// HTTP/2), taken from the first filter chain's HTTP connection manager.
	server serverSettings
	// copyBuffer is the size of the buffers a request's body is relayed
	// through, each way: per_connection_buffer_limit_bytes, at most 32 KiB
	// (see bufferLimitChunk).
	copyBuffer int
	// bufferLimit is per_connection_buffer_limit_bytes (Envoy's default
	// 1 MiB when unset): how much request body a retry may replay.
	bufferLimit int
}

// chainState is one filter chain: certificate, TLS settings, verifier, HTTP.
type chainState struct {
	name        string
	serverNames []string
	// tls is the chain's server config without VerifyConnection, which is
	// bound per connection so that the failure reason reaches the log.
	tls      *tls.Config
	verifier *mtls.Verifier // nil: client certificates are not requested
	leaf     *x509.Certificate
	certName string // SDS name of the server certificate
	hcm      *hcmSettings
	ocsp     *ocspcheck.Policy // client_auth.ocsp from the chain's metadata; nil: off
}

// hcmSettings is what the proxy honours of an HttpConnectionManager.
type hcmSettings struct {
	routeName string
	// statPrefix names the config listener of a chain in the request log
	// and metrics (certplane sets it to the listener's name; on a shared
	// address the Listener's name is the address's).
	statPrefix string
	// xfcc is forward_client_cert_details; xfccFields is
	// set_current_client_cert_details (SANITIZE_SET, APPEND_FORWARD).
	xfcc              hcmv3.HttpConnectionManager_ForwardClientCertDetails
	xfccFields        mtls.XFCCFields
	streamIdleTimeout time.Duration
	// rbacSet: the chain has the RBAC filter, whose own config is rbac
	// (routes may replace it).
	rbacSet bool
	rbac    *rbacConfig
	// underscores is headers_with_underscores_action.
	underscores corev3.HttpProtocolOptions_HeadersWithUnderscoresAction
	path        pathConfig
	// mutations are the request mutations of the header_mutation filters,
	// in filter order.
	mutations []headerMutation
	server    serverSettings
}

// serverSettings are the connection manager's settings that net/http fixes
// per http.Server; a change starts a new server generation. Comparable.
type serverSettings struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	// HTTP/2 (http2_protocol_options); 0 is Go's default.
	maxConcurrentStreams int
	streamWindow         int
	connectionWindow     int
}

// pick selects the filter chain for an SNI value as Envoy's filter chain
// matcher does: exact server name, then the longest matching wildcard, then
// a chain without server_names, then default_filter_chain.
func (l *listenerState) pick(sni string) *chainState {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if sni != "" {
		if c := l.exact[sni]; c != nil {
			return c
		}
		for rest := sni; ; {
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if c := l.wildcards["."+rest]; c != nil {
				return c
			}
		}
	}
	if l.catchAll != nil {
		return l.catchAll
	}
	return l.def
}

// chainByName finds a chain by name, for requests on a connection whose
// chain was picked under an older state.
func (l *listenerState) chainByName(name string) *chainState {
	for _, c := range l.chains {
		if c.name == name {
			return c
		}
	}
	if l.def != nil && (l.def.name == name || name == "") {
		return l.def
	}
	if len(l.chains) > 0 {
		return l.chains[0]
	}
	return l.def
}
