package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// mountPprof registers net/http/pprof's handlers on mux (not on
// http.DefaultServeMux, which nothing here serves).
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// LoopbackOnly checks that addr (host:port) binds loopback only: a
// loopback IP or "localhost". Profiles show memory contents (private keys
// among them), so --pprof is refused on any other admin address.
func LoopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (127.0.0.1, ::1 or localhost): profiles expose process memory", addr)
}
