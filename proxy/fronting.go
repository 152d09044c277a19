package proxy

import "fmt"

// authorityPseudoHeader is the one pseudo-header a route's header matcher
// may name: certplane's domain fronting guards (envoy/fronting.go) answer
// 421 to a request whose authority another listener of the address
// claims. Envoy keeps an HTTP/1 Host header as :authority, and so does
// the proxy: net/http gives both the HTTP/2 :authority and the HTTP/1
// Host (or the authority of an absolute-form target) as Request.Host, as
// received: case and port kept, matched by the matcher's own rules
// (ignore_case).
const authorityPseudoHeader = ":authority"

// values is what a header matcher on name sees of the request: every value
// of the header, or the authority for :authority (none when the request
// has none, as an HTTP/1.0 request may: the matcher then fails as Envoy's
// does on a missing header).
func (f requestFacts) values(name string) []string {
	if name == authorityPseudoHeader {
		if f.authority == "" {
			return nil
		}
		return []string{f.authority}
	}
	return f.header.Values(name)
}

// sameServerSettings refuses a listener whose filter chains' connection
// managers differ in what net/http fixes per server (timeouts, header
// limit, HTTP/2 settings): the proxy runs one http.Server per listener, so
// it could honour only one chain's. certplane emits the same for every
// chain, shared addresses included.
func sameServerSettings(ls *listenerState) error {
	chains := ls.chains
	if ls.def != nil {
		chains = append(chains[:len(chains):len(chains)], ls.def)
	}
	for _, c := range chains {
		if c.hcm.server != ls.server {
			return fmt.Errorf("filter chain %q: http_connection_manager timeouts, max_request_headers_kb or http2_protocol_options differ from chain %q's: per-chain server settings are not implemented by certplane proxy", c.name, ls.chains[0].name)
		}
	}
	return nil
}

// requestLogName is the "listener" of a request's log line and metrics:
// the chain's stat_prefix, which certplane sets to the config listener's
// name as Envoy's HTTP access log prints it, else the Listener's name.
func requestLogName(listener string, chain *chainState) string {
	if chain != nil && chain.hcm != nil && chain.hcm.statPrefix != "" {
		return chain.hcm.statPrefix
	}
	return listener
}
