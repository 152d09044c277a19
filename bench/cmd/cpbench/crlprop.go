package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"sync"
	"time"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// CRLPropagation is file -> Secret at an ADS client for a new CRL of one
// CA, in a store that already holds a big CRL of another CA (issue #12:
// the big one must not be parsed again).
type CRLPropagation struct {
	Serials     int     `json:"serials"` // in the other CA's CRL
	Changes     int     `json:"changes"`
	SecretP50MS float64 `json:"secret_p50_ms"`
	SecretP99MS float64 `json:"secret_p99_ms"`
}

// crlPropagation serves a trust store holding ca's CRL (bigPEM) and a
// second CA with a small CRL, then writes n new CRLs of the second CA and
// times each from the write to the trust Secret carrying it at an
// observing ADS client.
func crlPropagation(ctx context.Context, work string, ca *pki.CA, bigPEM []byte, serials, n int) (*CRLPropagation, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	go1 := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	quiet := slog.New(slog.DiscardHandler)
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	fx, err := newFixture(filepath.Join(work, "crlprop"), fixtureOptions{listeners: 1, addr: func(int) string { return listen },
		backends: []string{"127.0.0.1:9"}, ca: ca, crlPEM: bigPEM})
	if err != nil {
		return nil, err
	}
	other, err := pki.NewRootCA(pki.Options{CommonName: "cpbench other CA"})
	if err != nil {
		return nil, err
	}
	trust := filepath.Join(fx.certs, "trust", "clients")
	otherCRL := func(num int64) ([]byte, error) {
		der, err := other.CRL(pki.CRLOptions{Number: big.NewInt(num), ThisUpdate: time.Now().Add(-time.Minute).UTC().Truncate(time.Second)})
		return pki.CRLPEM(der), err
	}
	first, err := otherCRL(1)
	if err != nil {
		return nil, err
	}
	// b.crl sorts before ca.crl: the Secret's CRL bytes start with it.
	if err := pki.WriteFilesAtomic(
		pki.File{Path: filepath.Join(trust, "b.pem"), Data: pki.CertPEM(other.Cert), Mode: 0o644},
		pki.File{Path: filepath.Join(trust, "b.crl"), Data: first, Mode: 0o644},
	); err != nil {
		return nil, err
	}
	cp, err := xds.NewControlPlane(xds.Options{CertsDir: fx.certs, ConfigDir: fx.config, Logger: quiet})
	if err != nil {
		return nil, err
	}
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		return nil, err
	}
	go1(func() { _ = cp.Run(ctx) })
	go1(func() { _ = cp.Serve(ctx, lis, creds) })
	secret := envoy.TrustSecretName("clients")
	type arrival struct {
		at  time.Time
		crl []byte
	}
	arrived := make(chan arrival, 16)
	go1(func() {
		_ = client.Run(ctx, client.Config{Target: lis.Addr().String(), NodeID: "cpbench-crlprop", Logger: quiet, Insecure: true,
			OnUpdate: func(r client.Resources) {
				if s := r.Secrets[secret]; s != nil {
					select {
					case arrived <- arrival{time.Now(), s.GetValidationContext().GetCrl().GetInlineBytes()}:
					default:
					}
				}
			}})
	})
	wait := func(want []byte, timeout time.Duration) (time.Time, error) {
		deadline := time.After(timeout)
		for {
			select {
			case a := <-arrived:
				if bytes.HasPrefix(a.crl, want) {
					return a.at, nil
				}
			case <-deadline:
				return time.Time{}, fmt.Errorf("the CRL did not reach the ADS client within %v", timeout)
			}
		}
	}
	if _, err := wait(first, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("first snapshot: %w", err)
	}
	var lat []time.Duration
	for i := range n {
		pem, err := otherCRL(int64(i + 2))
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := pki.WriteFileAtomic(filepath.Join(trust, "b.crl"), pem, 0o644); err != nil {
			return nil, err
		}
		at, err := wait(pem, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		lat = append(lat, at.Sub(t0))
	}
	r := &CRLPropagation{Serials: serials, Changes: n}
	r.SecretP50MS, r.SecretP99MS = quantiles(lat)
	return r, nil
}
