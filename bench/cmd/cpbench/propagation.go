package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/demobackend"
	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// Propagation is file -> Secret at an ADS client, and file -> first
// handshake served with the new certificate by the proxy.
type Propagation struct {
	Changes       int     `json:"changes"`
	HoldOffMS     float64 `json:"hold_off_ms"`
	SecretP50MS   float64 `json:"secret_p50_ms"`
	SecretP99MS   float64 `json:"secret_p99_ms"`
	HandshakeP50  float64 `json:"handshake_p50_ms"`
	HandshakeP99  float64 `json:"handshake_p99_ms"`
	PollHandshake string  `json:"poll"`
}

// propagation rotates the server certificate n times in a watched
// directory. An in-process control plane (controlplane.Runner, the default
// watcher hold-off) serves an observing ADS client and an in-process proxy;
// each rotation times the Secret's arrival at the observer and the first
// handshake the proxy completes with the new leaf. The poller does full
// handshakes back to back (no resumption), as a client population would.
func propagation(ctx context.Context, work string, n int) (*Propagation, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	go1 := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	backend, err := freeAddr()
	if err != nil {
		return nil, err
	}
	go1(func() { _ = demobackend.New("backend", quiet).ListenAndServe(ctx, backend) })
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	fx, err := newFixture(filepath.Join(work, "propagation"), fixtureOptions{
		listeners: 1, addr: func(int) string { return listen }, serials: 100, backends: []string{backend},
	})
	if err != nil {
		return nil, err
	}
	leaves := make([]*pki.Leaf, n)
	for i := range leaves {
		if leaves[i], err = fx.newServer(); err != nil {
			return nil, err
		}
	}

	cp, err := controlplane.New(controlplane.Options{CertsDir: fx.certs, ConfigDir: fx.config, Logger: quiet})
	if err != nil {
		return nil, err
	}
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		return nil, err
	}
	go1(func() { _ = cp.Run(ctx) })
	go1(func() { _ = cp.Serve(ctx, lis, creds) })
	target := lis.Addr().String()

	// The observer: a plain ADS client, as Envoy subscribes.
	secretName := envoy.ServerSecretName("default")
	arrived := make(chan string, 16)
	go1(func() {
		_ = client.Run(ctx, client.Config{Target: target, NodeID: "cpbench-observer", Logger: quiet, Insecure: true,
			OnUpdate: func(r client.Resources) {
				if s := r.Secrets[secretName]; s != nil {
					select {
					case arrived <- leafSerial(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()):
					default:
					}
				}
			}})
	})
	p := proxy.New(proxy.Options{Logger: quiet, ConnLog: quiet})
	go1(func() {
		_ = p.Run(ctx, client.Config{Target: target, NodeID: "cpbench-proxy", Logger: quiet, Insecure: true})
	})

	roots := x509.NewCertPool()
	roots.AddCert(fx.ca.Cert)
	tc := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{fx.alice.TLSCertificate()}, ServerName: "127.0.0.1",
		ClientSessionCache: nil, MinVersion: tls.VersionTLS13}
	served := func() (string, error) {
		d := tls.Dialer{Config: tc}
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		defer hcancel()
		c, err := d.DialContext(hctx, "tcp", listen)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return serialOf(c.(*tls.Conn).ConnectionState().PeerCertificates[0]), nil
	}
	// Ready: the proxy serves the current certificate.
	if err := pollUntil(ctx, 30*time.Second, func() bool { _, err := served(); return err == nil }); err != nil {
		return nil, fmt.Errorf("proxy never served a handshake on %s: %w", listen, err)
	}
	drain(arrived)

	var secretLat, hsLat []time.Duration
	for i, l := range leaves {
		want := serialOf(l.Cert)
		t0 := time.Now()
		if err := fx.writeServer(l); err != nil {
			return nil, err
		}
		var hsAt time.Time
		hsDone := make(chan error, 1)
		go func() {
			hsDone <- pollUntil(ctx, 5*time.Second, func() bool {
				s, err := served()
				if err == nil && s == want {
					hsAt = time.Now()
					return true
				}
				return false
			})
		}()
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case s := <-arrived:
				if s == want {
					secretLat = append(secretLat, time.Since(t0))
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("change %d: the new server Secret did not reach the ADS client within 5s", i)
			}
		}
		if err := <-hsDone; err != nil {
			return nil, fmt.Errorf("change %d: the proxy did not serve the new certificate: %w", i, err)
		}
		hsLat = append(hsLat, hsAt.Sub(t0))
	}
	r := &Propagation{Changes: n, HoldOffMS: 50, PollHandshake: "full TLS 1.3 mTLS handshakes back to back"}
	r.SecretP50MS, r.SecretP99MS = quantiles(secretLat)
	r.HandshakeP50, r.HandshakeP99 = quantiles(hsLat)
	return r, nil
}

func drain(c chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// pollUntil calls f until it reports true, ctx ends or timeout passes. It
// is the measurement loop itself (each call is a handshake or a cheap read),
// so it does not sleep between calls beyond a millisecond.
func pollUntil(ctx context.Context, timeout time.Duration, f func() bool) error {
	end := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(end) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}
