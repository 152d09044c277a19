package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/status"
	"github.com/certplane/certplane/xds/client"
)

// Fanout is one update pushed to many ADS clients by `certplane serve`.
type Fanout struct {
	Clients int `json:"clients"`
	// LastReceivedMS: from the CRL file written to the last client that
	// received (and, right after, ACKed) the new Secret version.
	FirstReceivedMS float64 `json:"first_received_ms"`
	LastReceivedMS  float64 `json:"last_received_ms"`
	// ServerAllACKedMS: when /status first showed every node's secrets
	// ACKed at the new version (polled every 50 ms: an upper bound).
	ServerAllACKedMS float64 `json:"server_all_acked_ms"`
	ServeRSSIdleMB   float64 `json:"serve_rss_before_clients_mb"`
	ServeRSSMB       float64 `json:"serve_rss_connected_mb"`
	ServeHWMMB       float64 `json:"serve_hwm_mb"`
}

// fanout starts `certplane serve` and n ADS clients (xds/client, the
// proxy's own client, each with its own node id and gRPC connection), waits
// until every client holds the trust Secret, writes a new CRL and times the
// push to all of them.
func fanout(ctx context.Context, bin, work string, n int) (*Fanout, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "fanout")
	fx, err := newFixture(dir, fixtureOptions{listeners: 1, addr: func(int) string { return listen }, serials: 100, backends: []string{"127.0.0.1:9"}})
	if err != nil {
		return nil, err
	}
	next, err := fx.crl(101)
	if err != nil {
		return nil, err
	}
	d, err := startServe(bin, dir, fx.certs, fx.config, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	xdsAddr, adminAddr := d.xds, d.admin
	r := &Fanout{Clients: n, ServeRSSIdleMB: mb(statusKB(d.pid(), "VmRSS"))}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	quiet := slog.New(slog.DiscardHandler)
	var (
		mu       sync.Mutex
		initial  = map[int]string{} // client -> first secrets version
		got      = make([]time.Time, n)
		have     atomic.Int64 // clients holding a first version
		updated  atomic.Int64 // clients holding a newer version
		allIn    = make(chan struct{})
		allNew   = make(chan struct{})
		inOnce   sync.Once
		newOnce  sync.Once
		nodeName = func(i int) string { return fmt.Sprintf("cpbench-fanout-%04d", i) }
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = client.Run(ctx, client.Config{Target: xdsAddr, NodeID: nodeName(i), Logger: quiet, Insecure: true,
				OnUpdate: func(res client.Resources) {
					v := res.Versions[resource.SecretType]
					if len(res.Secrets) == 0 || v == "" {
						return
					}
					now := time.Now()
					mu.Lock()
					defer mu.Unlock()
					first, seen := initial[i]
					switch {
					case !seen:
						initial[i] = v
						if have.Add(1) == int64(n) {
							inOnce.Do(func() { close(allIn) })
						}
					case v != first && got[i].IsZero():
						got[i] = now
						if updated.Add(1) == int64(n) {
							newOnce.Do(func() { close(allNew) })
						}
					}
				}})
		}()
	}
	select {
	case <-allIn:
	case <-time.After(120 * time.Second):
		return nil, fmt.Errorf("only %d of %d ADS clients received a first snapshot within 120s", have.Load(), n)
	}
	r.ServeRSSMB = mb(statusKB(d.pid(), "VmRSS"))

	statusURL := "http://" + adminAddr + "/status"
	st, err := getStatus(statusURL)
	if err != nil {
		return nil, err
	}
	before := st.ControlPlane.Versions["secrets"]
	t0 := time.Now()
	if err := fx.writeCRL(next); err != nil {
		return nil, err
	}
	// The server's view, polled while the clients receive.
	srvDone := make(chan time.Duration, 1)
	go func() { srvDone <- pollAllACKed(ctx, statusURL, n, before, t0) }()
	select {
	case <-allNew:
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("only %d of %d ADS clients received the new CRL within 60s", updated.Load(), n)
	}
	mu.Lock()
	first, last := got[0], got[0]
	for _, g := range got {
		if g.Before(first) {
			first = g
		}
		if g.After(last) {
			last = g
		}
	}
	mu.Unlock()
	r.FirstReceivedMS = ms(first.Sub(t0))
	r.LastReceivedMS = ms(last.Sub(t0))
	r.ServerAllACKedMS = ms(<-srvDone)
	r.ServeHWMMB = mb(statusKB(d.pid(), "VmHWM"))
	return r, nil
}

func getStatus(url string) (*status.Status, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	if st.ControlPlane == nil {
		return nil, fmt.Errorf("%s: no control_plane section", url)
	}
	return &st, nil
}

// pollAllACKed polls /status until every one of n nodes ACKed a secrets
// version other than before, the one served until t0; -1 on timeout.
func pollAllACKed(ctx context.Context, url string, n int, before string, t0 time.Time) time.Duration {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if st, err := getStatus(url); err == nil {
			v := st.ControlPlane.Versions["secrets"]
			acked := 0
			for _, nd := range st.ControlPlane.Nodes {
				if v != before && nd.Types["secrets"].LastACKed == v {
					acked++
				}
			}
			if acked >= n {
				return time.Since(t0)
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(50 * time.Millisecond):
		}
	}
	return -1
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
