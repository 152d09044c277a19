package config

import "fmt"

// issuerChecks drops, when Envoy may be the data plane (proxyOnly false),
// every listener with a matcher of type issuer. No Envoy RBAC principal,
// matcher input or CEL attribute reads the client certificate's issuer;
// envoy/ carries the matcher in a metadata principal that Envoy never
// matches and the bundled proxy enforces, so Envoy would admit fewer
// clients than written. Certplane serves no listener whose rules a data
// plane would enforce differently from the config: it is refused, as
// client_auth.ocsp mode require is (ocspChecks).
func (r *resolver) issuerChecks(files []*ConfigFile, proxyOnly bool) {
	if proxyOnly {
		return
	}
	issuerAt := func(l *Listener) *itemErr {
		for _, cf := range files {
			if cf.File == l.SourceFile {
				return cf.issuerAt[l.Name]
			}
		}
		return nil
	}
	kept := r.m.Listeners[:0]
	for _, l := range r.m.Listeners {
		if at := issuerAt(l); at != nil {
			r.m.Problems = append(r.m.Problems, problemOf(l.Name, lineErr(l.SourceFile, at.line, fmt.Errorf(
				"listener %q: %v: type issuer is enforced only by the bundled proxy: Envoy's RBAC filter reads the SANs and the subject of a client certificate, never its issuer, so this listener is not served to Envoy (fail closed): serve it with certplane proxy, or give serve --data-plane proxy when only certplane proxies consume it; for Envoy, admit only that issuer's clients with a trust store holding only that CA",
				l.Name, at.err))))
			continue
		}
		kept = append(kept, l)
	}
	r.m.Listeners = kept
}
