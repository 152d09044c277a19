package proxy

import (
	"crypto/tls"
	"fmt"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// boringSuites maps the BoringSSL cipher names Envoy accepts to Go's suite
// IDs. Only TLS 1.0-1.2 suites are listed: like Envoy, the proxy ignores
// cipher_suites for TLS 1.3, whose suites Go always enables.
var boringSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// envoyServerDefaultSuites is Envoy's downstream default cipher list.
var envoyServerDefaultSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// cipherSuites translates an Envoy cipher_suites list. Entries may be
// BoringSSL equal-preference groups "[A|B]"; Go orders suites itself, so the
// grouping only matters for membership.
func cipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return envoyServerDefaultSuites, nil
	}
	var out []uint16
	for _, entry := range names {
		for _, n := range strings.Split(strings.Trim(entry, "[]"), "|") {
			id, ok := boringSuites[strings.TrimSpace(n)]
			if !ok {
				return nil, fmt.Errorf("cipher suite %q is unknown or not supported by Go's TLS stack", n)
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// tlsVersion maps an Envoy protocol version; TLS_AUTO yields def, Envoy's
// default for that bound (min TLS 1.2, max TLS 1.3 on the server side).
func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, def uint16) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return def, nil
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10, nil
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("TLS protocol version %v is unknown", v)
}

// tlsParams applies tls_params to cfg.
func tlsParams(p *tlsv3.TlsParameters, cfg *tls.Config) error {
	minV, err := tlsVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12)
	if err != nil {
		return fmt.Errorf("tls_params.tls_minimum_protocol_version: %w", err)
	}
	maxV, err := tlsVersion(p.GetTlsMaximumProtocolVersion(), tls.VersionTLS13)
	if err != nil {
		return fmt.Errorf("tls_params.tls_maximum_protocol_version: %w", err)
	}
	if minV > maxV {
		return fmt.Errorf("tls_params: minimum protocol version %s is above maximum %s", tls.VersionName(minV), tls.VersionName(maxV))
	}
	suites, err := cipherSuites(p.GetCipherSuites())
	if err != nil {
		return fmt.Errorf("tls_params.cipher_suites: %w", err)
	}
	cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = minV, maxV, suites
	return nil
}

// alpn validates alpn_protocols: the proxy speaks h2 and http/1.1 only.
func alpn(protos []string) ([]string, error) {
	if len(protos) == 0 {
		return []string{"http/1.1"}, nil
	}
	for _, p := range protos {
		if p != "h2" && p != "http/1.1" {
			return nil, fmt.Errorf("alpn_protocols: %q is not implemented (want h2 or http/1.1)", p)
		}
	}
	return append([]string(nil), protos...), nil
}
