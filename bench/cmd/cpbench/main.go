// Command cpbench measures certplane's control plane: propagation of a
// file change to an ADS client and to the proxy's handshakes, snapshot
// rebuilds at scale (1,000 listeners, 10,000 CAs, a 1,000,000-serial CRL),
// the proxy's memory and handshake cost with that CRL, and the fan-out of
// one update to 1,000 ADS clients. bench/run.sh runs it; it writes one JSON
// document that bench/cmd/report turns into RESULTS.md.
//
// Everything listens on 127.0.0.1 and every process it starts is stopped
// before it returns.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/watcher"
)

// Results is the document cpbench writes.
type Results struct {
	Propagation *Propagation `json:"propagation,omitempty"`
	Scale       []*Scale     `json:"scale,omitempty"`
	CRLSmall    *CRLCost     `json:"crl_small,omitempty"`
	CRLLarge    *CRLCost     `json:"crl_large,omitempty"`
	Fanout      *Fanout      `json:"fanout,omitempty"`
	Push        []*Push      `json:"push,omitempty"`
}

func main() {
	bin := flag.String("certplane", "certplane", "certplane binary (serve and proxy run as subprocesses)")
	work := flag.String("work", "", "scratch directory (required)")
	out := flag.String("out", "", "write the JSON here (default stdout)")
	part := flag.String("part", "all", "all, propagation, scale, crl, fanout, push, crlprof (scale-child is internal)")
	memprofile := flag.String("memprofile", "heap.pprof", "crlprof: heap profile to write")
	changes := flag.Int("changes", 200, "propagation: certificate rotations")
	clients := flag.Int("clients", 1000, "fan-out: ADS clients")
	listeners := flag.Int("listeners", 1000, "scale: listeners")
	cas := flag.Int("cas", 10_000, "scale: CAs in the trust store")
	serials := flag.Int("serials", 1_000_000, "scale: serials in the CRL")
	certs := flag.String("certs", "", "scale-child: certs dir")
	scaleProfile := flag.String("scale-memprofile", "", "scale-child: write a heap profile after the rebuilds")
	cfg := flag.String("config", "", "scale-child: config dir")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("cpbench: ")
	if *part == "scale-child" {
		if err := scaleChild(*certs, *cfg, 3, *scaleProfile); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *work == "" {
		flag.Usage()
		os.Exit(2)
	}
	checkpointPath = *out
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, *bin, *memprofile, *work, *part, *changes, *clients, *listeners, *cas, *serials)
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	b = append(b, '\n')
	if *out == "" {
		_, _ = os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

// checkpointPath, when set, receives the results after every part, so a
// later failure keeps what was measured.
var checkpointPath string

func checkpoint(r *Results) {
	if checkpointPath == "" {
		return
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(checkpointPath, append(b, '\n'), 0o644); err != nil {
		log.Printf("checkpoint: %v", err)
	}
}

func run(ctx context.Context, bin, memprofile, work, part string, changes, clients, listeners, cas, serials int) (*Results, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	want := func(p string) bool { return part == "all" || part == p }
	var r Results
	var err error
	if want("propagation") {
		log.Printf("propagation: %d certificate rotations (hold-off %v)", changes, watcher.DefaultHoldOff)
		if r.Propagation, err = propagation(ctx, work, changes); err != nil {
			return nil, fmt.Errorf("propagation: %w", err)
		}
		r.Propagation.HoldOffMS = ms(watcher.DefaultHoldOff)
		checkpoint(&r)
	}
	if want("fanout") {
		log.Printf("fan-out: %d ADS clients", clients)
		if r.Fanout, err = fanout(ctx, bin, work, clients); err != nil {
			return nil, fmt.Errorf("fan-out: %w", err)
		}
		checkpoint(&r)
	}
	if !want("scale") && !want("crl") && !want("push") && part != "crlprof" {
		return &r, nil
	}
	ca, err := pki.NewRootCA(pki.Options{CommonName: "cpbench scale root"})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	f := &fixture{ca: ca}
	big, err := f.crl(serials)
	if err != nil {
		return nil, err
	}
	log.Printf("signed a CRL of %d serials (%.1f MB PEM) in %v", serials, float64(len(big))/(1<<20), time.Since(t0).Round(time.Millisecond))
	if part == "crlprof" {
		log.Printf("heap profile of control plane + proxy with %d serials -> %s", serials, memprofile)
		return &r, crlProfile(ctx, work, ca, big, memprofile)
	}
	if want("crl") {
		small, err := f.crl(1_000)
		if err != nil {
			return nil, err
		}
		log.Printf("proxy with a 1,000-serial CRL")
		if r.CRLSmall, err = crlCost(ctx, bin, work, "crl-small", ca, small, 1_000, 500); err != nil {
			return nil, err
		}
		log.Printf("proxy with a %d-serial CRL", serials)
		if r.CRLLarge, err = crlCost(ctx, bin, work, "crl-large", ca, big, serials, 500); err != nil {
			return nil, err
		}
		checkpoint(&r)
	}
	if want("push") {
		small, err := f.crl(1_000)
		if err != nil {
			return nil, err
		}
		// The baseline, the large CRL alone, then every dimension at once:
		// each a fresh serve process, so RSS and peak are its own.
		for _, c := range []struct {
			name                    string
			listeners, cas, serials int
			crl                     []byte
		}{{"push-base", 1, 2, 1_000, small}, {"push-bigcrl", 1, 2, serials, big}, {"push-scale", listeners, cas, serials, big}} {
			log.Printf("push: %d listeners, %d CAs, %d serials", c.listeners, c.cas, c.serials)
			p, err := push(ctx, bin, work, c.name, c.listeners, c.cas, c.serials, ca, c.crl, changes/10)
			if err != nil {
				p = &Push{Listeners: c.listeners, CAs: c.cas, Serials: c.serials, Error: err.Error()}
				log.Printf("push: %v", err)
			}
			r.Push = append(r.Push, p)
			checkpoint(&r)
		}
	}
	if want("scale") {
		if _, err := pki.SaveCADir(filepath.Join(work, "scale", "ca"), ca); err != nil {
			return nil, err
		}
		small, err := f.crl(1_000)
		if err != nil {
			return nil, err
		}
		// Each dimension alone, then all together.
		for _, c := range []struct {
			listeners, cas, serials int
			crl                     []byte
		}{{listeners, 1, 1_000, small}, {1, cas, 1_000, small}, {1, 1, serials, big}, {listeners, cas, serials, big}} {
			log.Printf("scale: %d listeners, %d CAs, %d serials", c.listeners, c.cas, c.serials)
			if err := os.RemoveAll(filepath.Join(work, "scale", "certs")); err != nil {
				return nil, err
			}
			if err := os.RemoveAll(filepath.Join(work, "scale", "config")); err != nil {
				return nil, err
			}
			fx, err := scaleFixture(work, c.listeners, c.cas, ca, c.crl)
			if err != nil {
				return nil, err
			}
			s, err := scaleParent(fx, c.listeners, c.cas, c.serials)
			if err != nil {
				return nil, err
			}
			if s.Error != "" {
				log.Printf("scale: %s", s.Error)
			}
			r.Scale = append(r.Scale, s)
			checkpoint(&r)
		}
	}
	return &r, nil
}
