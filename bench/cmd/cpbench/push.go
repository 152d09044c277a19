package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/xds/client"
)

// Push is one `certplane serve` process holding a trust store of CAs, one
// of which may have a very large CRL, timed while small changes land: a new
// CRL of another CA of the same store, and an edit of one listener.
type Push struct {
	Listeners int `json:"listeners"`
	CAs       int `json:"trust_store_cas"`
	// Serials is the size of the large CA's CRL (1,000 for the baseline).
	Serials int `json:"crl_serials"`
	// ReadyMS: from serve's start to /readyz answering 200.
	ReadyMS float64 `json:"ready_ms"`
	// CRLPush: file write of another CA's new CRL -> the new Secret
	// version received by an ADS client (xds/client), per change.
	CRLPushP50MS float64 `json:"crl_push_p50_ms"`
	CRLPushP99MS float64 `json:"crl_push_p99_ms"`
	CRLPushes    int     `json:"crl_pushes"`
	// Edit: config file write changing one listener's route -> the new
	// RouteConfiguration version received.
	EditP50MS float64 `json:"edit_p50_ms"`
	EditP99MS float64 `json:"edit_p99_ms"`
	Edits     int     `json:"edits"`
	// RSSMB is serve's RSS once settled: 3 s after the last change, past
	// the control plane's delayed memory release.
	RSSMB float64 `json:"serve_rss_mb"`
	HWMMB float64 `json:"serve_hwm_mb"`
	Error string  `json:"error,omitempty"`
}

// push measures one configuration on the live binary. crlPEM is the CRL of
// ca (the issuing CA); a second CA, "other", has its own small CRL file in
// the same store and is the one that changes.
func push(ctx context.Context, bin, work, name string, listeners, cas, serials int, ca *pki.CA, crlPEM []byte, changes int) (*Push, error) {
	dir := filepath.Join(work, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	fx, err := newFixture(dir, fixtureOptions{
		listeners: listeners, addr: func(i int) string { return fmt.Sprintf("127.0.0.1:%d", 30000+i) },
		extraCAs: cas - 2, ca: ca, crlPEM: crlPEM, backends: []string{"127.0.0.1:9"},
	})
	if err != nil {
		return nil, err
	}
	other, err := pki.NewRootCA(pki.Options{CommonName: "cpbench changing CA"})
	if err != nil {
		return nil, err
	}
	trust := filepath.Join(fx.certs, "trust", "clients")
	otherCRL := func(n int64) ([]byte, error) {
		at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
		s, err := pki.RandomSerial()
		if err != nil {
			return nil, err
		}
		der, err := other.CRL(pki.CRLOptions{Number: big.NewInt(n), ThisUpdate: at, Revoked: []pki.Revoked{{Serial: s, At: at}}})
		if err != nil {
			return nil, err
		}
		return pki.CRLPEM(der), nil
	}
	first, err := otherCRL(1)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFilesAtomic(
		pki.File{Path: filepath.Join(trust, "other.pem"), Data: pki.CertPEM(other.Cert), Mode: 0o644},
		pki.File{Path: filepath.Join(trust, "other.crl"), Data: first, Mode: 0o644},
	); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(fx.config, "bench.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}

	t0 := time.Now()
	d, err := startServe(bin, dir, fx.certs, fx.config, 5*time.Minute, "--resync", "1h")
	if err != nil {
		return nil, err
	}
	defer d.stop()
	xdsAddr := d.xds
	r := &Push{Listeners: listeners, CAs: cas, Serials: serials}
	r.ReadyMS = ms(time.Since(t0))

	// One observing ADS client, subscribed as Envoy is; versions arrive on
	// a channel so each change is timed from its own write.
	type seen struct {
		at              time.Time
		secrets, routes string
	}
	updates := make(chan seen, 64)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = client.Run(cctx, client.Config{Target: xdsAddr, NodeID: "cpbench-push", Insecure: true, Logger: slog.New(slog.DiscardHandler),
			OnUpdate: func(res client.Resources) {
				s := seen{time.Now(), res.Versions[resource.SecretType], res.Versions[resource.RouteType]}
				select {
				case updates <- s:
				case <-cctx.Done():
				}
			}})
	}()
	// wait returns when an update satisfies ok, or errs after timeout.
	var cur seen
	wait := func(what string, timeout time.Duration, ok func(seen) bool) (time.Time, error) {
		deadline := time.After(timeout)
		for {
			select {
			case s := <-updates:
				cur = s
				if ok(s) {
					return s.at, nil
				}
			case <-deadline:
				return time.Time{}, fmt.Errorf("%s: nothing received within %v (serve log: %s)", what, timeout, d.log)
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
	}
	if _, err := wait("first snapshot", 2*time.Minute, func(s seen) bool { return s.secrets != "" && s.routes != "" }); err != nil {
		return nil, err
	}

	var crlTimes, editTimes []time.Duration
	for i := range changes {
		pem, err := otherCRL(int64(i + 2))
		if err != nil {
			return nil, err
		}
		before := cur.secrets
		w := time.Now()
		if err := pki.WriteFileAtomic(filepath.Join(trust, "other.crl"), pem, 0o644); err != nil {
			return nil, err
		}
		at, err := wait("new CRL", 30*time.Second, func(s seen) bool { return s.secrets != before })
		if err != nil {
			return nil, err
		}
		crlTimes = append(crlTimes, at.Sub(w))

		// Edit listener l00000's route: the first path_prefix alternates.
		prefix := "/"
		if i%2 == 0 {
			prefix = "/edited/"
		}
		edited := strings.Replace(string(cfg), "routes: [{path_prefix: /, backend: b}]", "routes: [{path_prefix: "+prefix+", backend: b}]", 1)
		before = cur.routes
		w = time.Now()
		if err := pki.WriteFileAtomic(cfgPath, []byte(edited), 0o644); err != nil {
			return nil, err
		}
		at, err = wait("listener edit", 30*time.Second, func(s seen) bool { return s.routes != before })
		if err != nil {
			return nil, err
		}
		editTimes = append(editTimes, at.Sub(w))
	}
	log.Printf("push %s: CRL push samples %v", name, crlTimes)
	r.CRLPushes, r.Edits = len(crlTimes), len(editTimes)
	r.CRLPushP50MS, r.CRLPushP99MS = quantiles(crlTimes)
	r.EditP50MS, r.EditP99MS = quantiles(editTimes)
	select {
	case <-time.After(3 * time.Second): // settling is what is measured here
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.RSSMB = mb(statusKB(d.pid(), "VmRSS"))
	r.HWMMB = mb(statusKB(d.pid(), "VmHWM"))
	log.Printf("push %s: ready %.0f ms, CRL push p50 %.1f p99 %.1f ms, edit p50 %.1f p99 %.1f ms, RSS %.0f MB, peak %.0f MB",
		name, r.ReadyMS, r.CRLPushP50MS, r.CRLPushP99MS, r.EditP50MS, r.EditP99MS, r.RSSMB, r.HWMMB)
	return r, nil
}
