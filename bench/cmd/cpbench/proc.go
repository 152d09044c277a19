package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// statusKB reads one "Vm...:" line of /proc/pid/status, in kB.
func statusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// daemon is a certplane subprocess (serve or proxy).
type daemon struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startDaemon(logPath, bin string, args ...string) (*daemon, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s %v: %w", bin, args, err)
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { d.done <- cmd.Wait(); lf.Close() }()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// served is a `certplane serve` daemon with the addresses it serves on.
type served struct {
	*daemon
	xds, admin string // plaintext loopback xDS (--insecure-xds), admin HTTP
}

// startServe starts `certplane serve` on certs and config with free
// loopback xDS and admin addresses, logging warnings to dir/serve.log, and
// waits for its /readyz.
func startServe(bin, dir, certs, config string, ready time.Duration, extra ...string) (*served, error) {
	xdsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--certs", certs, "--config", config,
		"--xds-address", xdsAddr, "--insecure-xds", "--admin-address", adminAddr, "--log-level", "warn"}, extra...)
	d, err := startDaemon(filepath.Join(dir, "serve.log"), bin, args...)
	if err != nil {
		return nil, err
	}
	if err := d.waitHTTP("http://"+adminAddr+"/readyz", ready); err != nil {
		d.stop()
		return nil, err
	}
	return &served{daemon: d, xds: xdsAddr, admin: adminAddr}, nil
}

// stop sends SIGTERM and waits up to 10 s, then kills.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// waitHTTP polls url until it answers 200, the daemon exits, or timeout.
func (d *daemon) waitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-d.done:
			return fmt.Errorf("%s exited (%v) before %s answered; see %s", d.cmd.Path, err, url, d.log)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %v; see %s", url, timeout, d.log)
		case <-t.C:
		}
	}
}

// quantiles returns p50 and p99 of ds (nearest rank) in milliseconds.
func quantiles(ds []time.Duration) (p50, p99 float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	return at(0.50), at(0.99)
}
