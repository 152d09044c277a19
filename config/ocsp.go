package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// client_auth.ocsp: OCSP for client certificates. Only the bundled proxy
// can check it (Envoy checks no client OCSP); see ocspRefusal.

type rawOCSP struct {
	Mode    string `yaml:"mode"`
	URL     string `yaml:"url"`
	Timeout string `yaml:"timeout"`
}

// OCSPMode is how a listener uses OCSP for its clients.
type OCSPMode string

// The OCSP modes.
const (
	OCSPOff OCSPMode = "off"
	// OCSPBestEffort refuses a client the responder says is revoked;
	// unknown or no answer admits it, logged and counted.
	OCSPBestEffort OCSPMode = "best_effort"
	// OCSPRequire admits a client only on a good, verified answer.
	OCSPRequire OCSPMode = "require"
)

// OCSP is a listener's client_auth.ocsp.
type OCSP struct {
	Mode OCSPMode // "" is off
	// URL, when set, is asked instead of the certificate's AIA responder.
	URL string
	// Timeout bounds what one handshake may wait for the responder.
	Timeout time.Duration
}

// On reports whether OCSP is checked at all.
func (o OCSP) On() bool { return o.Mode == OCSPBestEffort || o.Mode == OCSPRequire }

// DefaultOCSPTimeout bounds the time an OCSP lookup adds to a handshake.
const DefaultOCSPTimeout = 2 * time.Second

func convertOCSP(ro *rawOCSP, n *yaml.Node, keyLine int, mode ClientAuthMode) (OCSP, *itemErr) {
	at := func(keys ...string) int { return pathLine(n, keyLine, append([]string{"ocsp"}, keys...)...) }
	o := OCSP{Mode: OCSPOff, Timeout: DefaultOCSPTimeout}
	switch OCSPMode(ro.Mode) {
	case "", OCSPOff:
		return o, nil
	case OCSPBestEffort, OCSPRequire:
		o.Mode = OCSPMode(ro.Mode)
	default:
		return o, errAt(at("mode"), "client_auth: ocsp: mode %q: want off, best_effort or require", ro.Mode)
	}
	if !mode.VerifiesClients() {
		return o, errAt(at("mode"), "client_auth: ocsp needs mode verify or optional: mode %s verifies no client certificate", mode)
	}
	if ro.URL != "" {
		if err := checkFetchURL(ro.URL); err != nil {
			return o, errAt(at("url"), "client_auth: ocsp: url %q: %v", ro.URL, err)
		}
		o.URL = ro.URL
	}
	if ro.Timeout != "" {
		v, err := time.ParseDuration(ro.Timeout)
		if err != nil || v <= 0 || v > 30*time.Second {
			return o, errAt(at("timeout"), "client_auth: ocsp: timeout %q: want a positive duration up to 30s such as 2s (it delays the handshake)", ro.Timeout)
		}
		o.Timeout = v
	}
	return o, nil
}

// ocspRefusal is why a listener with ocsp must not be served when Envoy
// may be its data plane (l.ProxyOnly false): Envoy checks no client OCSP,
// and require must never silently become off. best_effort is served with
// a warning: on Envoy it is off.
func (r *resolver) ocspChecks(proxyOnly bool) {
	if proxyOnly {
		return
	}
	kept := r.m.Listeners[:0]
	for _, l := range r.m.Listeners {
		switch l.ClientAuth.OCSP.Mode {
		case OCSPRequire:
			r.m.Problems = append(r.m.Problems, problemOf(l.Name, fileErr(l.SourceFile, fmt.Errorf(
				"listener %q: client_auth: ocsp mode require is enforced only by the bundled proxy; Envoy checks no client OCSP, so this listener is not served to Envoy (fail closed): serve it with certplane proxy, or give serve --data-plane proxy when only certplane proxies consume it", l.Name))))
			continue
		case OCSPBestEffort:
			r.m.Warnings = append(r.m.Warnings, problemOf(l.Name, fileErr(l.SourceFile, fmt.Errorf(
				"listener %q: client_auth: ocsp mode best_effort is enforced only by the bundled proxy; on Envoy this listener checks no OCSP", l.Name))))
		}
		kept = append(kept, l)
	}
	r.m.Listeners = kept
}
