package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/certplane/certplane/admin"
	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/watcher"
	"github.com/certplane/certplane/xds"
)

const wait = 10 * time.Second

const httpsYAML = `listeners:
  - name: https
    address: 127.0.0.1:8443
    certificates: [default]
    client_auth:
      mode: verify
      trust_store: clients
    routes:
      - {path_prefix: /, backend: demo}
backends:
  - name: demo
    endpoints: ["127.0.0.1:8080", "127.0.0.1:8081"]
`

func kubeYAML(http2 bool) string {
	return fmt.Sprintf(`listeners:
  - name: kube
    address: 127.0.0.1:9443
    certificates: [kube]
    http2: %t
    routes:
      - {path_prefix: /, backend: demo}
`, http2)
}

// e2e is a running control plane with its admin endpoint and one
// Envoy-like ADS client.
type e2e struct {
	t        testing.TB
	tr       *pkitest.Tree
	ca       *pkitest.CA
	cp       *Runner
	reg      *prometheus.Registry
	xdsAddr  string
	adminURL string
	client   *adsClient
}

// newE2E writes two listeners ("https": verify against trust store
// "clients" with a CRL, in config/https.yaml; "kube": a Kubernetes-mounted
// server cert, in config/kube.yaml), starts the control plane on
// 127.0.0.1:0 and connects a client that has received and ACKed everything.
func newE2E(t testing.TB, holdOff time.Duration) *e2e {
	t.Helper()
	e := &e2e{t: t, tr: pkitest.NewTree(t), ca: pkitest.NewCA(t, "e2e root")}
	e.tr.Server("default", e.ca.Server("localhost", pkitest.IPs("127.0.0.1")))
	e.tr.KubeSecret("server/kube", e.ca.Server("kube.example"))
	e.tr.Trust("clients", "ca.pem", e.ca.CertPEM())
	e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM())
	e.tr.WriteConfig("https.yaml", httpsYAML)
	e.tr.WriteConfig("kube.yaml", kubeYAML(true))

	e.reg = prometheus.NewRegistry()
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	cp, err := New(Options{
		CertsDir: e.tr.Certs, ConfigDir: e.tr.Config,
		HoldOff: holdOff, Resync: -1,
		Registry: e.reg,
		Logger:   slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cp = cp
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- cp.Run(ctx) }()

	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	e.xdsAddr = lis.Addr().String()
	serveDone := make(chan error, 1)
	go func() { serveDone <- cp.Serve(ctx, lis, creds) }()

	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.adminURL = "http://" + alis.Addr().String()
	adminDone := make(chan error, 1)
	h := admin.Handler(admin.Options{
		Status:   func() any { return status.Status{ControlPlane: cp.Status()} },
		Ready:    cp.Ready,
		Registry: e.reg,
	})
	go func() { adminDone <- admin.Serve(ctx, alis, h) }()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan error{runDone, serveDone, adminDone} {
			if err := <-ch; err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	})

	select {
	case <-cp.Loaded():
	case <-time.After(wait):
		t.Fatal("control plane never loaded")
	}
	e.client = e.connect("sidecar")
	return e
}

func (e *e2e) connect(nodeID string) *adsClient {
	e.t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+e.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	c := newADSClient(e.t, conn, nodeID)
	c.start()
	c.waitFor("every type received and ACKed", wait, func() bool {
		for _, typeURL := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType} {
			if len(c.accepted[typeURL].resources) == 0 {
				return false
			}
		}
		return len(c.accepted[resource.SecretType].resources) == 3
	})
	return c
}

func (e *e2e) status() status.Status {
	e.t.Helper()
	resp, err := http.Get(e.adminURL + "/status")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("/status: %s", resp.Status)
	}
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// waitServed waits until cond holds on /status, checking after each reload:
// for what a reload changes.
func (e *e2e) waitServed(what string, cond func(status.Status) bool) status.Status {
	e.t.Helper()
	deadline := time.After(wait)
	for {
		updated := e.cp.Updated()
		st := e.status()
		if cond(st) {
			return st
		}
		select {
		case <-updated:
		case <-deadline:
			b, _ := json.MarshalIndent(st, "", "  ")
			e.t.Fatalf("timed out waiting for %s; /status:\n%s", what, b)
		}
	}
}

// waitStatus polls /status until cond holds: for what xDS clients do (ACKs,
// NACKs), which no reload signals.
func (e *e2e) waitStatus(what string, cond func(status.Status) bool) status.Status {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := e.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			e.t.Fatalf("timed out waiting for %s; /status:\n%s", what, b)
		}
		time.Sleep(10 * time.Millisecond) // polling interval of a deadline-bounded poll
	}
}

func secretOf(c *adsClient, name string) *tlsv3.Secret {
	r, _ := c.resource(resource.SecretType, name).(*tlsv3.Secret)
	return r
}

// expectSecretsOnly runs change and checks that exactly one push follows,
// carrying Secrets only, in which check holds.
func (e *e2e) expectSecretsOnly(t *testing.T, change func(), check func(*adsClient) bool) {
	t.Helper()
	c := e.client
	n0 := c.total()
	sv := c.version(resource.SecretType)
	change()
	c.waitFor("a new Secret version", wait, func() bool {
		return c.accepted[resource.SecretType].version != sv
	})
	if !check(c) {
		t.Fatal("the new Secret version does not hold the change")
	}
	// Ordered ADS sends a push's types in the order Cluster, Endpoint,
	// Listener, Route, Secret: any other type changed by this push came
	// before the Secret response just seen.
	for _, r := range c.since(n0) {
		if r.typeURL != resource.SecretType {
			t.Errorf("a %s response (version %s) was sent; only Secrets changed", xds.TypeName(r.typeURL), r.version)
		}
	}
}

// breakAndFix writes bad into rel and checks that nothing is pushed and
// /status names the file and the reason, then runs fix and checks it pushes.
func (e *e2e) breakAndFix(t *testing.T, rel string, bad []byte, reason string, fix func()) {
	t.Helper()
	e.breakInput(t, rel, bad, reason, fix, true)
}

// breakInput is breakAndFix; heldBack false is for a trust store file,
// admitted per file (issue #11): its last good content is served, so the
// problem is the file's alone and the listener stays served from current
// inputs, with nothing pushed all the same.
func (e *e2e) breakInput(t *testing.T, rel string, bad []byte, reason string, fix func(), heldBack bool) {
	t.Helper()
	c := e.client
	before := e.status().ControlPlane
	n0 := c.total()
	file := e.tr.Write(rel, bad, 0o600)

	st := e.waitServed("the problem on /status", func(st status.Status) bool {
		for _, p := range st.ControlPlane.Errors {
			if p.File == file && strings.Contains(p.Reason, reason) {
				return true
			}
		}
		return false
	})
	cpst := st.ControlPlane
	var found status.Problem
	for _, p := range cpst.Errors {
		if p.File == file {
			found = p
		}
	}
	if heldBack && (found.Listener != "https" || !found.LastGoodServed) {
		t.Errorf("problem %+v: want listener https with last_good_served", found)
	}
	if !heldBack && (found.Listener != "" || !strings.Contains(found.Reason, "last good")) {
		t.Errorf("problem %+v: want the file's own problem, saying its last good content is served", found)
	}
	if !strings.Contains(found.Reason, file) {
		t.Errorf("reason %q does not name the file %s", found.Reason, file)
	}
	if fmt.Sprint(cpst.Versions) != fmt.Sprint(before.Versions) {
		t.Errorf("versions changed on a bad input: %v -> %v", before.Versions, cpst.Versions)
	}
	if got := c.since(n0); len(got) != 0 {
		t.Errorf("%d responses pushed on a bad input, first: %s %s", len(got), xds.TypeName(got[0].typeURL), got[0].version)
	}
	var https status.Listener
	for _, l := range cpst.Listeners {
		if l.Name == "https" {
			https = l
		}
	}
	if want := map[bool]string{true: status.StateLastGood, false: status.StateServing}[heldBack]; https.State != want {
		t.Errorf("listener https state %q, want %q", https.State, want)
	}

	sv := c.version(resource.SecretType)
	fix()
	c.waitFor("a push after the fix", wait, func() bool { return c.accepted[resource.SecretType].version != sv })
	e.waitServed("no more errors", func(st status.Status) bool { return len(st.ControlPlane.Errors) == 0 })
}

func TestEndToEnd(t *testing.T) {
	e := newE2E(t, 5*time.Millisecond)
	c := e.client

	t.Run("initial", func(t *testing.T) {
		st := e.status().ControlPlane
		if !st.Ready {
			t.Fatal("not ready after the first push")
		}
		resp, err := http.Get(e.adminURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz = %d", resp.StatusCode)
		}
		names := func(typeURL string) []string {
			c.mu.Lock()
			defer c.mu.Unlock()
			return sortedKeys(c.accepted[typeURL].resources)
		}
		for typeURL, want := range map[string][]string{
			resource.ListenerType: {"https", "kube"},
			resource.RouteType:    {"https", "kube"},
			resource.ClusterType:  {"demo"},
			resource.EndpointType: {"demo"},
			resource.SecretType:   {"server/default", "server/kube", "trust/clients"},
		} {
			if got := names(typeURL); !slices.Equal(got, want) {
				t.Errorf("%s: got %v, want %v", xds.TypeName(typeURL), got, want)
			}
		}
		// The client's last ACK may still be in flight.
		st = e.waitStatus("every type ACKed", func(st status.Status) bool {
			return len(st.ControlPlane.Nodes) == 1 && st.ControlPlane.Nodes[0].Types["secrets"].LastACKed == st.ControlPlane.Versions["secrets"]
		}).ControlPlane
		if len(st.Nodes) != 1 || st.Nodes[0].ID != "sidecar" {
			t.Fatalf("nodes %+v, want one node sidecar", st.Nodes)
		}
		for _, typ := range []string{"listeners", "routes", "clusters", "endpoints", "secrets"} {
			ts := st.Nodes[0].Types[typ]
			if ts.LastACKed == "" || ts.LastACKed != st.Versions[typ] {
				t.Errorf("node %s: last ACKed %q, served %q", typ, ts.LastACKed, st.Versions[typ])
			}
		}
	})

	t.Run("new CRL re-sends Secrets only", func(t *testing.T) {
		mallory := e.ca.Client("mallory")
		e.ca.Revoke(mallory)
		crl := e.ca.CRLPEM()
		e.expectSecretsOnly(t, func() { e.tr.Trust("clients", "ca.crl", crl) }, func(c *adsClient) bool {
			s := secretOf(c, "trust/clients")
			return s != nil && string(s.GetValidationContext().GetCrl().GetInlineBytes()) == string(crl)
		})
	})

	t.Run("server cert rotation re-sends Secrets only", func(t *testing.T) {
		leaf := e.ca.Server("localhost", pkitest.IPs("127.0.0.1"))
		e.expectSecretsOnly(t, func() { e.tr.Server("default", leaf) }, func(c *adsClient) bool {
			s := secretOf(c, "server/default")
			return s != nil && string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) == string(leaf.CertPEM())
		})
	})

	t.Run("Kubernetes ..data swap", func(t *testing.T) {
		leaf := e.ca.Server("kube.example")
		e.expectSecretsOnly(t, func() { e.tr.KubeSecret("server/kube", leaf) }, func(c *adsClient) bool {
			s := secretOf(c, "server/kube")
			return s != nil && string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) == string(leaf.CertPEM())
		})
	})

	t.Run("listener YAML edit sends a new Listener", func(t *testing.T) {
		lv := c.version(resource.ListenerType)
		sv := c.version(resource.SecretType)
		e.tr.WriteConfig("kube.yaml", kubeYAML(false))
		c.waitFor("a new Listener version", wait, func() bool { return c.accepted[resource.ListenerType].version != lv })
		l, _ := c.resource(resource.ListenerType, "kube").(*listenerv3.Listener)
		var alpn []string
		for _, fc := range l.GetFilterChains() {
			ctx := &tlsv3.DownstreamTlsContext{}
			if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
				t.Fatal(err)
			}
			alpn = ctx.GetCommonTlsContext().GetAlpnProtocols()
		}
		if !slices.Equal(alpn, []string{"http/1.1"}) {
			t.Errorf("kube ALPN %v after http2: false", alpn)
		}
		if c.version(resource.SecretType) != sv {
			t.Error("Secrets re-sent for a listener edit")
		}
	})

	t.Run("malformed PEM", func(t *testing.T) {
		leaf := e.ca.Server("localhost", pkitest.IPs("127.0.0.1"))
		e.breakAndFix(t, "certs/server/default/tls.crt",
			[]byte("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"),
			"malformed or truncated PEM block at line 1",
			func() { e.tr.Server("default", leaf) })
	})

	t.Run("mismatched key", func(t *testing.T) {
		other := e.ca.Server("localhost", pkitest.IPs("127.0.0.1"))
		e.breakAndFix(t, "certs/server/default/tls.key", other.KeyPEM(),
			"does not match the public key",
			func() { e.tr.Write("certs/server/default/tls.crt", other.CertPEM(), 0o644) })
	})

	t.Run("CRL from the wrong CA", func(t *testing.T) {
		e.breakInput(t, "certs/trust/clients/ca.crl", e.ca.Impostor().CRLPEM(),
			`is not signed by any CA of trust store "clients"`,
			func() { e.tr.Trust("clients", "ca.crl", e.ca.CRLPEM()) }, false)
	})

	t.Run("NACK is recorded and causes no resend storm", func(t *testing.T) {
		const detail = "Failed to load certificate chain from <inline>: test rejection"
		c.setReject(func(r response) string {
			if r.typeURL == resource.SecretType {
				return detail
			}
			return ""
		})
		acked := c.version(resource.SecretType)
		n0 := c.count(resource.SecretType)
		e.tr.Server("default", e.ca.Server("localhost", pkitest.IPs("127.0.0.1")))
		c.waitFor("the rejected Secret push", wait, func() bool { return c.countLocked(resource.SecretType) > n0 })

		st := e.waitStatus("the NACK on /status", func(st status.Status) bool {
			return len(st.ControlPlane.Nodes) == 1 && st.ControlPlane.Nodes[0].Types["secrets"].NACKDetail == detail
		}).ControlPlane
		ts := st.Nodes[0].Types["secrets"]
		if ts.LastNACKed != st.Versions["secrets"] || ts.LastACKed != acked || ts.NACKs != 1 {
			t.Errorf("secrets state %+v; want NACKed %s, ACKed %s, 1 NACK", ts, st.Versions["secrets"], acked)
		}
		// A storm re-sends within microseconds of each NACK; a quiet
		// window is the only way to observe that it does not happen.
		quiet := time.After(300 * time.Millisecond)
		<-quiet
		if got := c.count(resource.SecretType) - n0; got != 1 {
			t.Fatalf("%d Secret responses after one change and one NACK; want exactly 1 (no resend)", got)
		}
		if got := metricValue(t, e.reg, "certplane_xds_nacks_total", "secrets"); got != 1 {
			t.Errorf("certplane_xds_nacks_total{type=secrets} = %v, want 1", got)
		}

		// The next real change is delivered, once, and accepted.
		c.setReject(nil)
		leaf := e.ca.Server("localhost", pkitest.IPs("127.0.0.1"))
		e.tr.Server("default", leaf)
		c.waitFor("the next Secret push", wait, func() bool { return c.countLocked(resource.SecretType) > n0+1 })
		c.waitFor("it is accepted", wait, func() bool {
			s, _ := c.accepted[resource.SecretType].resources["server/default"].(*tlsv3.Secret)
			return string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) == string(leaf.CertPEM())
		})
		if got := c.count(resource.SecretType) - n0; got != 2 {
			t.Errorf("%d Secret responses for two changes; want 2", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		wants := []string{
			"certplane_reloads_total ",
			"certplane_reload_errors_total ",
			`certplane_snapshot_version_info{type="secrets",version="` + c.version(resource.SecretType) + `"} 1`,
			"certplane_xds_connected_nodes 1",
			`certplane_certificate_expiry_seconds{kind="server",secret="server/default"`,
			`certplane_certificate_expiry_seconds{kind="ca",secret="trust/clients"`,
			`certplane_listeners{state="serving"} 2`,
			`certplane_xds_nacks_total{type="secrets"} 1`,
		}
		// The push reaches the client before the reload's metrics are
		// recorded, and the client's ACK (its NACK count) travels on its
		// own: check again after each reload, and then within the deadline.
		var missing []string
		deadline := time.After(wait)
		for {
			updated := e.cp.Updated()
			resp, err := http.Get(e.adminURL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			missing = missing[:0]
			for _, w := range wants {
				if !strings.Contains(string(body), w) {
					missing = append(missing, w)
				}
			}
			if len(missing) == 0 {
				return
			}
			select {
			case <-updated:
			case <-deadline:
				t.Fatalf("/metrics lacks %q:\n%s", missing, body)
			}
		}
	})
}

func metricValue(t *testing.T, reg *prometheus.Registry, name, typ string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkPropagation measures the time from a CRL renamed into place to
// the new Secret received by an ADS client, through the watcher, config.Load,
// translation, validation and gRPC: with the default 50 ms hold-off (what an
// operator gets) and with a 1 ms one (the pipeline's own cost). The file is
// staged without fsync: how fast a disk syncs is not the control plane's
// latency. Besides the mean (ns/op) it reports the median and p99.
func BenchmarkPropagation(b *testing.B) {
	for _, hold := range []time.Duration{watcher.DefaultHoldOff, time.Millisecond} {
		b.Run("holdoff="+hold.String(), func(b *testing.B) {
			e := newE2E(b, hold)
			c := e.client
			crls := make([][]byte, b.N)
			for i := range crls {
				crls[i] = e.ca.CRLPEM()
			}
			dir := filepath.Join(e.tr.Certs, "trust", "clients")
			tmp := filepath.Join(dir, ".ca.crl.tmp")
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				sv := c.version(resource.SecretType)
				if err := os.WriteFile(tmp, crls[i], 0o644); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := os.Rename(tmp, filepath.Join(dir, "ca.crl")); err != nil {
					b.Fatal(err)
				}
				c.waitFor("the new CRL", wait, func() bool { return c.accepted[resource.SecretType].version != sv })
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
