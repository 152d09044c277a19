package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/controlplane"
	"github.com/certplane/certplane/pki"
)

// Scale is one control plane process loading and publishing a large
// configuration.
type Scale struct {
	Listeners int `json:"listeners"`
	CAs       int `json:"trust_store_cas"`
	Serials   int `json:"crl_serials"`
	// ColdMS is the first Reload (config.Load + translate + validate +
	// SetSnapshot); LoadMS the config.Load part of it.
	ColdMS     float64 `json:"cold_ms"`
	ColdLoadMS float64 `json:"cold_load_ms"`
	// RebuildMS is the median Reload after a server certificate rotation
	// (everything is read again; only the Secret changes).
	RebuildMS     float64 `json:"rebuild_ms"`
	RebuildLoadMS float64 `json:"rebuild_load_ms"`
	Rebuilds      int     `json:"rebuilds"`
	Serving       int     `json:"serving"`
	HWMMB         float64 `json:"hwm_mb"`
	RSSMB         float64 `json:"rss_mb"`
	HeapInuseMB   float64 `json:"heap_inuse_after_gc_mb"`
	// Error is set when the run failed, e.g. went over the memory cap.
	Error string `json:"error,omitempty"`
}

// memCapKB bounds the scale child's RSS: past it the child stops and
// reports, instead of taking a shared machine down.
const memCapKB = 6 << 20

// scaleFixture writes the large configuration (in this process, so the
// generation's garbage stays out of the measured child).
func scaleFixture(work string, listeners, cas int, ca *pki.CA, crlPEM []byte) (*fixture, error) {
	return newFixture(filepath.Join(work, "scale"), fixtureOptions{
		listeners: listeners, addr: func(i int) string { return fmt.Sprintf("127.0.0.1:%d", 30000+i) },
		extraCAs: cas - 1, ca: ca, crlPEM: crlPEM, backends: []string{"127.0.0.1:19001", "127.0.0.1:19002"},
	})
}

// scaleParent runs the measurement in a fresh process (this binary with
// -part scale-child), so its peak memory is the control plane's alone.
func scaleParent(fx *fixture, listeners, cas, serials int) (*Scale, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-part", "scale-child", "-certs", fx.certs, "-config", fx.config)
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var s Scale
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		if runErr == nil {
			runErr = err
		}
		s.Error = fmt.Sprintf("scale child: %v: %s", runErr, strings.TrimSpace(errb.String()))
	}
	s.Listeners, s.CAs, s.Serials = listeners, cas, serials
	return &s, nil
}

func scaleChild(certs, cfg string, rebuilds int, memprofile string) error {
	step := atomic.Value{}
	step.Store("start")
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			if rss := statusKB(os.Getpid(), "VmRSS"); rss > memCapKB {
				_ = json.NewEncoder(os.Stdout).Encode(Scale{Error: fmt.Sprintf("stopped at %.1f GB RSS (cap %d GB) during %s",
					float64(rss)/(1<<20), memCapKB>>20, step.Load())})
				os.Exit(3)
			}
		}
	}()
	var loadDur time.Duration
	// A loader that remembers, as serve's: its trust memory holds the
	// parse cache, so a rebuild parses only the files that changed.
	mem, err := config.NewTrustMemory("", false)
	if err != nil {
		return err
	}
	ld := config.Loader{Trust: mem}
	// The bench drives every reload itself: the watcher's own would race it.
	cp, err := controlplane.New(controlplane.Options{CertsDir: certs, ConfigDir: cfg, Resync: -1, HoldOff: time.Hour, MaxDelay: time.Hour,
		Logger: slog.New(slog.DiscardHandler),
		Load: func(c, k string) (*config.Model, error) {
			t0 := time.Now()
			m, err := ld.Load(c, k)
			loadDur = time.Since(t0)
			return m, err
		}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	step.Store("the first build")
	t0 := time.Now()
	ran := make(chan error, 1)
	go func() { ran <- cp.Run(ctx) }()
	select {
	case <-cp.Loaded():
	case err := <-ran:
		return fmt.Errorf("cold reload: %w", err)
	}
	served := cp.Served()
	s := Scale{ColdMS: ms(time.Since(t0)), ColdLoadMS: ms(loadDur), Serving: len(served.Listeners), Rebuilds: rebuilds}
	if !served.Ready() || len(served.Errors) > 0 || len(served.Listeners) == 0 {
		return fmt.Errorf("cold reload: ready=%v serving=%d errors=%v", served.Ready(), len(served.Listeners), served.Errors)
	}
	caDir, err := pki.LoadCADir(filepath.Join(filepath.Dir(certs), "ca"))
	if err != nil {
		return err
	}
	fx := &fixture{certs: certs, ca: caDir.CA}
	var total, loads []time.Duration
	for i := range rebuilds {
		if err := fx.rotateServer(); err != nil {
			return err
		}
		step.Store(fmt.Sprintf("rebuild %d", i+1))
		t0 := time.Now()
		res, err := cp.ReloadWait(ctx)
		if err != nil {
			return err
		}
		total, loads = append(total, time.Since(t0)), append(loads, loadDur)
		if !res.Pushed {
			return fmt.Errorf("rebuild %d pushed nothing after a certificate rotation", i)
		}
	}
	if memprofile != "" {
		runtime.GC()
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return err
		}
		f.Close()
	}
	s.RebuildMS, _ = quantiles(total)
	s.RebuildLoadMS, _ = quantiles(loads)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.HeapInuseMB = float64(m.HeapInuse) / (1 << 20)
	s.HWMMB = mb(statusKB(os.Getpid(), "VmHWM"))
	s.RSSMB = mb(statusKB(os.Getpid(), "VmRSS"))
	runtime.KeepAlive(cp)
	return json.NewEncoder(os.Stdout).Encode(s)
}
