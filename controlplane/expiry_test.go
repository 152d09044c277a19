package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certplane/certplane/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/pki/pkitest"
	"github.com/certplane/certplane/status"
)

type syncBuffer = testutil.SyncBuffer

// TestExpiryWarnings serves a server certificate that expires in 20 days
// and a CRL whose nextUpdate is in 10 days, with a 30-day threshold: both
// are logged once (not again on a reload), flagged by
// certplane_expiring_soon, listed on /status; the CA (10 years) is not. Once
// the server certificate has expired, /status carries an error for it.
func TestExpiryWarnings(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9001")
	now := time.Now()
	server := s.CA.Server("localhost", pkitest.IPs("127.0.0.1"), pkitest.ValidBetween(now.Add(-time.Hour), now.Add(20*24*time.Hour)))
	s.Tree.Server("default", server)
	s.Trust("clients", "ca.crl", s.CA.CRLPEM(pkitest.CRLTimes(now.Add(-time.Hour), now.Add(10*24*time.Hour))))

	var logs syncBuffer
	reg := prometheus.NewRegistry()
	cp, err := New(Options{
		CertsDir: s.Certs, ConfigDir: s.Config, Registry: reg, Resync: -1,
		Logger:        slog.New(slog.NewJSONHandler(&logs, nil)),
		ExpiryWarning: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- cp.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	for range 3 { // resyncs must not repeat the warnings
		if _, err := cp.ReloadWait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`"msg":"server certificate expires soon","component":"xds","check":"expiry","kind":"server","name":"server/default","subject":"CN=localhost",`,
		`"msg":"CRL nextUpdate is near: publish a fresh CRL before then, or clients of its CA are refused","component":"xds","check":"expiry","kind":"crl","name":"trust/clients","subject":"CN=certplane test CA",`,
	} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("log has %d lines with %s, want 1:\n%s", n, want, out)
		}
	}
	if strings.Contains(out, `"kind":"ca"`) {
		t.Errorf("the CA (10 years left) was logged:\n%s", out)
	}

	gauges := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			gauges[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	for k, want := range map[string]float64{
		`certplane_expiring_soon{kind="server",name="server/default",subject="CN=localhost"}`:     1,
		`certplane_expiring_soon{kind="crl",name="trust/clients",subject="CN=certplane test CA"}`: 1,
		`certplane_expiring_soon{kind="ca",name="trust/clients",subject="CN=certplane test CA"}`:  0,
	} {
		if got, ok := gauges[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	left := gauges[`certplane_crl_next_update_seconds{issuer="CN=certplane test CA",name="trust/clients"}`]
	if left < 10*24*3600-120 || left > 10*24*3600 {
		t.Errorf("certplane_crl_next_update_seconds = %v, want about %v", left, 10*24*3600)
	}

	st := cp.Status()
	if st.ExpiryWarningSeconds != 30*24*3600 {
		t.Errorf("expiry_warning_seconds = %d", st.ExpiryWarningSeconds)
	}
	var kinds []string
	for _, e := range st.Expiring {
		kinds = append(kinds, e.Kind+":"+e.State)
	}
	if got := strings.Join(kinds, ","); got != "crl:expiring,server:expiring" {
		t.Errorf("expiring = %s, want crl then server, both expiring", got)
	}
	if len(st.Errors) != 0 {
		t.Errorf("errors before expiry: %+v", st.Errors)
	}

	// 21 days later the served certificate has expired: an error.
	later := st
	later.Errors = nil
	expiryStatus(later, status.Expiries(cp.Served().Inventory()), now.Add(21*24*time.Hour), 30*24*time.Hour)
	if len(later.Errors) != 1 {
		t.Fatalf("errors after expiry: %+v", later.Errors)
	}
	e := later.Errors[0]
	wantReason := fmt.Sprintf("%s: served certificate CN=localhost expired on %s: clients refuse it; renew it",
		s.ServerCert, server.Cert.NotAfter.UTC().Format(time.RFC3339))
	if e.File != s.ServerCert || e.Listener != "https" || e.Reason != wantReason || e.LastGoodServed {
		t.Errorf("error = %+v\nwant file %s, listener https, reason %q", e, s.ServerCert, wantReason)
	}
	var states []string
	for _, x := range later.Expiring {
		states = append(states, x.Kind+":"+x.State)
	}
	if got := strings.Join(states, ","); got != "crl:expired,server:expired" {
		t.Errorf("expiring after 21 days = %s", got)
	}
}
