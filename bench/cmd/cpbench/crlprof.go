package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/proxy"
	"github.com/certplane/certplane/xds"
	"github.com/certplane/certplane/xds/client"
)

// crlProfile runs the control plane and the proxy in this process with a
// CRL of the given size, waits until the proxy completes a handshake, and
// writes a heap profile (after a GC) to path: `go tool pprof -sample_index=
// inuse_space` shows which function holds the CRL's memory, and
// alloc_space what parsing it cost.
func crlProfile(ctx context.Context, work string, ca *pki.CA, crlPEM []byte, path string) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	quiet := slog.New(slog.DiscardHandler)
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	fx, err := newFixture(filepath.Join(work, "crlprof"), fixtureOptions{listeners: 1, addr: func(int) string { return listen },
		backends: []string{"127.0.0.1:9"}, ca: ca, crlPEM: crlPEM})
	if err != nil {
		return err
	}
	crlPEM = nil
	cp, err := controlplane.New(controlplane.Options{CertsDir: fx.certs, ConfigDir: fx.config, Logger: quiet, Resync: -1})
	if err != nil {
		return err
	}
	lis, creds, err := xds.Listen("127.0.0.1:0", xds.Security{Insecure: true})
	if err != nil {
		return err
	}
	wg.Add(3)
	go func() { defer wg.Done(); _ = cp.Run(ctx) }()
	go func() { defer wg.Done(); _ = cp.Serve(ctx, lis, creds) }()
	p := proxy.New(proxy.Options{Logger: quiet, ConnLog: quiet})
	go func() {
		defer wg.Done()
		_ = p.Run(ctx, client.Config{Target: lis.Addr().String(), NodeID: "cpbench-crlprof", Logger: quiet, Insecure: true})
	}()
	roots := x509.NewCertPool()
	roots.AddCert(fx.ca.Cert)
	tc := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{fx.alice.TLSCertificate()}, ServerName: "127.0.0.1"}
	if err := pollUntil(ctx, 120*time.Second, func() bool {
		c, err := tls.Dial("tcp", listen, tc)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}); err != nil {
		return fmt.Errorf("crlprof: no handshake on %s", listen)
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
