package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// hcConfig is what the proxy honours of a HealthCheck.
type hcConfig struct {
	timeout            time.Duration
	interval           time.Duration
	noTrafficInterval  time.Duration // Envoy's default: 60s
	healthyThreshold   int
	unhealthyThreshold int
	path               string
}

func (c *hcConfig) key() string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%v|%v|%v|%d|%d|%s", c.timeout, c.interval, c.noTrafficInterval, c.healthyThreshold, c.unhealthyThreshold, c.path)
}

func buildHealthCheck(hc *corev3.HealthCheck) (*hcConfig, error) {
	h := hc.GetHttpHealthCheck()
	if h == nil {
		return nil, errors.New("only http_health_check is implemented by certplane proxy")
	}
	if h.GetPath() == "" {
		return nil, errors.New("http_health_check.path is empty")
	}
	c := &hcConfig{path: h.GetPath()}
	if hc.GetTimeout() == nil || hc.GetTimeout().AsDuration() <= 0 {
		return nil, errors.New("timeout must be a positive duration")
	}
	if hc.GetInterval() == nil || hc.GetInterval().AsDuration() <= 0 {
		return nil, errors.New("interval must be a positive duration")
	}
	if hc.GetHealthyThreshold() == nil || hc.GetUnhealthyThreshold() == nil {
		return nil, errors.New("healthy_threshold and unhealthy_threshold are required")
	}
	c.timeout, c.interval = hc.GetTimeout().AsDuration(), hc.GetInterval().AsDuration()
	c.noTrafficInterval = 60 * time.Second
	if nt := hc.GetNoTrafficInterval(); nt != nil {
		if nt.AsDuration() <= 0 {
			return nil, errors.New("no_traffic_interval must be a positive duration")
		}
		c.noTrafficInterval = nt.AsDuration()
	}
	c.healthyThreshold = max(1, int(hc.GetHealthyThreshold().GetValue()))
	c.unhealthyThreshold = max(1, int(hc.GetUnhealthyThreshold().GetValue()))
	return c, nil
}

// healthChecker runs active HTTP health checks for one cluster's hosts.
type healthChecker struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// hcDeps is what a checker reports into.
type hcDeps struct {
	log *slog.Logger
	// warmed is called once, from a checker goroutine, when the cluster's
	// first round has finished.
	warmed func(cluster string)
}

// startHealthChecker checks each host every interval (no_traffic_interval
// until the cluster carries its first request). Envoy's semantics: a host
// starts unhealthy and its first success marks it healthy at once; later,
// healthyThreshold consecutive successes restore it. A response other than
// 200 marks it unhealthy at once; timeouts and connection failures need
// unhealthyThreshold in a row. A success also ends an outlier ejection.
// Envoy sends the cluster name as Host by default.
func startHealthChecker(cluster string, cfg *hcConfig, hosts []*host, scheme string, t http.RoundTripper, rt *clusterRuntime, d hcDeps) *healthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	hc := &healthChecker{cancel: cancel}
	client := &http.Client{Transport: t, Timeout: cfg.timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	for _, h := range hosts {
		hc.wg.Add(1)
		go func() {
			defer hc.wg.Done()
			var ok, fail int
			timer := time.NewTimer(0)
			defer timer.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				res := probe(ctx, client, scheme, cluster, h.addr, cfg.path)
				if ctx.Err() != nil {
					return
				}
				was := h.healthy.Load()
				switch res {
				case probeOK:
					ok, fail = ok+1, 0
					if !h.checked.Swap(true) || ok >= cfg.healthyThreshold {
						h.healthy.Store(true)
					}
					h.unejectOnHealthCheck(time.Now())
				case probeBadStatus:
					ok, fail = 0, 0
					h.healthy.Store(false)
				case probeNetFail:
					ok, fail = 0, fail+1
					if fail >= cfg.unhealthyThreshold {
						h.healthy.Store(false)
					}
				}
				if now := h.healthy.Load(); now != was {
					level := slog.LevelWarn // a host leaving rotation
					if now {
						level = slog.LevelInfo
					}
					d.log.Log(context.Background(), level, "health check changed host state", "cluster", cluster, "host", h.addr, "healthy", now)
				}
				h.probed.Store(true)
				if allProbed(hosts) && rt.warm.CompareAndSwap(false, true) {
					d.warmed(cluster)
				}
				next := cfg.noTrafficInterval
				if rt.trafficSeen.Load() {
					next = cfg.interval
				}
				timer.Reset(next)
			}
		}()
	}
	return hc
}

// allProbed reports whether every host has had a health check result.
func allProbed(hosts []*host) bool {
	for _, h := range hosts {
		if !h.probed.Load() {
			return false
		}
	}
	return true
}

type probeResult int

const (
	probeOK probeResult = iota
	probeBadStatus
	probeNetFail
)

func probe(ctx context.Context, c *http.Client, scheme, cluster, addr, path string) probeResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return probeNetFail
	}
	req.Host = cluster
	req.Header.Set("User-Agent", "certplane-proxy-health-check")
	resp, err := c.Do(req)
	if err != nil {
		return probeNetFail
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return probeBadStatus
	}
	return probeOK
}

func (hc *healthChecker) stop() {
	hc.cancel()
	hc.wg.Wait()
}
