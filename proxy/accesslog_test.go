package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/certplane/certplane/envoy"
)

// TestLogKeysMatchEnvoyAccessLog: the proxy's connection-log and
// request-log lines carry every key of the json_format certplane gives
// Envoy's listener and HTTP access logs (envoy/accesslog.go), with Envoy's
// value formats, so operators read the same fields from both data planes.
func TestLogKeysMatchEnvoyAccessLog(t *testing.T) {
	e := newGuideEnv(t, nil)
	tc := e.alice.TLS()
	cl := httpsClient(e.serverCA.Cert, &tc, false)
	req, _ := http.NewRequest("POST", e.url("/orders?id=7"), strings.NewReader("hello"))
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, _, err := get(httpsClient(e.serverCA.Cert, nil, false), e.url("/")); err == nil {
		t.Fatal("request without a certificate accepted")
	}
	var ok, fail, request map[string]any
	waitFor(t, "three log lines", func() bool {
		ok = first(e.px.log.find(map[string]string{"msg": "handshake", "result": "ok", "peer_subject": "CN=alice"}))
		fail = first(e.px.log.find(map[string]string{"msg": "handshake", "result": "fail"}))
		request = first(e.px.log.find(map[string]string{"msg": "request", "method": "POST"}))
		return ok != nil && fail != nil && request != nil
	})

	missing := func(line map[string]any, format map[string]string, except ...string) []string {
		var out []string
		for k := range format {
			if _, has := line[k]; !has && !slices.Contains(except, k) {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	listenerKeys, httpKeys := envoy.ListenerLogFormat("public"), envoy.HTTPLogFormat("public")
	if m := missing(ok, listenerKeys, "transport_failure"); len(m) > 0 {
		t.Errorf("successful handshake line lacks Envoy keys %v: %v", m, ok)
	}
	if _, has := ok[keyTransportFailure]; has {
		t.Errorf("successful handshake line has %s: %v", keyTransportFailure, ok)
	}
	// A client without a certificate sends no peer fields.
	if m := missing(fail, listenerKeys, "peer_subject", "peer_issuer", "peer_serial", "peer_not_before", "peer_not_after"); len(m) > 0 {
		t.Errorf("failed handshake line lacks Envoy keys %v: %v", m, fail)
	}
	if m := missing(request, httpKeys); len(m) > 0 {
		t.Errorf("request line lacks Envoy keys %v: %v", m, request)
	}

	envoyTimeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, c := range []struct {
		line map[string]any
		key  string
		want string // exact, or a regexp when it starts with ^
	}{
		{ok, "start_time", "^"},
		{ok, "peer_not_before", "^"},
		{ok, "peer_not_after", "^"},
		{ok, "tls_version", "TLSv1.3"},
		{ok, "tls_cipher", "TLS_AES_128_GCM_SHA256"},
		{ok, "listener", "public"},
		{ok, "sni", "proxy.test"},
		{ok, "peer_issuer", "CN=Client Root CA"},
		{ok, "peer_serial", serialHex(e.alice.Cert)},
		{fail, keyTransportFailure, "no_certificate"},
		{request, "start_time", "^"},
		{request, "path", "/orders?id=7"},
		{request, "protocol", "HTTP/2"},
		{request, "status", "200"},
		{request, "bytes_received", "5"},
		{request, "bytes_sent", "9"},
		{request, "peer_subject", "CN=alice"},
	} {
		got := fmt.Sprint(c.line[c.key])
		if c.want == "^" {
			if !envoyTimeRE.MatchString(got) {
				t.Errorf("%s = %q, want Envoy's time format 2006-01-02T15:04:05.000Z", c.key, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	if got := fmt.Sprint(request["upstream_host"]); got != e.b1.addr() && got != e.b2.addr() {
		t.Errorf("upstream_host = %q, want a backend", got)
	}

	// TLS 1.2 prints the OpenSSL suite name, as Envoy does.
	tc12 := e.alice.TLS()
	cl12 := httpsClient(e.serverCA.Cert, &tc12, false)
	cl12.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
	cl12.Transport.(*http.Transport).TLSClientConfig.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	if _, _, err := get(cl12, e.url("/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "TLS 1.2 line", func() bool {
		return len(e.px.log.find(map[string]string{"msg": "handshake", "tls_version": "TLSv1.2", "tls_cipher": "ECDHE-ECDSA-AES256-GCM-SHA384"})) == 1
	})
}

func first(lines []map[string]any) map[string]any {
	if len(lines) == 0 {
		return nil
	}
	return lines[0]
}
