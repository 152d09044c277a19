package proxy

import "fmt"

// Domain fronting guards (envoy/fronting.go) are routes whose header
// matcher on :authority answers 421: routes.go matches :authority against
// Request.Host, which net/http fills from the HTTP/2 :authority or the
// HTTP/1 Host (or an absolute-form target's authority) as received, case
// and port kept, as Envoy keeps the HTTP/1 Host as :authority. The rest of
// this file is what the proxy needs for several config listeners sharing
// one Listener.

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
