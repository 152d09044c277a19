// Command soak is the load client of bench/soak.sh. Against a running
// `certplane proxy`, for --duration, it:
//
//   - keeps --workers valid clients busy (half on keep-alive connections,
//     half opening a new TLS connection per request), counting every failed
//     request and the latency of every good one;
//   - rotates the server certificate every --rotate with `certplane pki
//     server` (written into the watched directory);
//   - every --revoke issues a new client with `certplane pki client`, checks
//     that it is served, revokes it with `certplane pki revoke` (which
//     rewrites the watched CRL), measures how long until it is refused, and
//     from then on probes every revoked client: each must be refused;
//   - samples the proxy's RSS (/proc/<pid>/status) every 10 s.
//
// It prints a report, ending with one verdict line, and exits 1 if any valid
// request failed, any revoked client was served after its revocation took
// effect, or the RSS was not flat. Flat: the first half of the run is
// warm-up (caches, connection pools, the GC's heap goal settle), and the RSS
// at the end may exceed the RSS at mid-run by at most --rss-growth percent
// (20 by default); a leak of one object per request or per rotation grows
// steadily and fails it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	bin, caDir, certs, clients, addr string
	pid                              int
	duration, rotate, revoke, grace  time.Duration
	workers                          int
	// rssGrowth is the largest growth of the proxy's RSS, in percent, from
	// the middle of the run (warm-up over) to its end that still counts as
	// flat.
	rssGrowth float64
}

func main() {
	var c config
	flag.StringVar(&c.bin, "certplane", "certplane", "the certplane binary")
	flag.StringVar(&c.caDir, "ca", "", "CA directory (certplane pki ca --out)")
	flag.StringVar(&c.certs, "certs", "", "the proxy's watched certificate directory")
	flag.StringVar(&c.clients, "clients", "", "directory for client certificates (valid-*, revoked-*)")
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8443", "the proxy listener")
	flag.IntVar(&c.pid, "pid", 0, "the proxy's process id, for RSS")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to run")
	flag.DurationVar(&c.rotate, "rotate", time.Second, "server certificate rotation period")
	flag.DurationVar(&c.revoke, "revoke", 10*time.Second, "period of one new revocation")
	flag.DurationVar(&c.grace, "grace", 5*time.Second, "longest a revocation may take to reach the proxy")
	flag.IntVar(&c.workers, "workers", 4, "valid clients")
	flag.Float64Var(&c.rssGrowth, "rss-growth", 20, "flat RSS: the end RSS may exceed the mid-run RSS by at most this many percent")
	flag.Parse()
	if c.caDir == "" || c.certs == "" || c.clients == "" || c.pid == 0 {
		fmt.Fprintln(os.Stderr, "soak: --ca, --certs, --clients and --pid are required")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// certplane runs one certplane command.
func (c config) certplane(args ...string) error {
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("certplane %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (c config) issueClient(name string) (tls.Certificate, error) {
	if err := c.certplane("pki", "client", "--ca", c.caDir, "--name", name, "--out", c.clients); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(filepath.Join(c.clients, name+".crt"), filepath.Join(c.clients, name+".key"))
}

func (c config) tlsConfig(cert tls.Certificate) (*tls.Config, error) {
	pem, err := os.ReadFile(filepath.Join(c.caDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in ca.crt")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (c config) httpClient(cert tls.Certificate, keepAlive bool) (*http.Client, error) {
	tc, err := c.tlsConfig(cert)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tc, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1,
	}}, nil
}

// get makes one request and reports whether it was answered 200.
func get(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// served reports whether a client certificate gets an answer, on a fresh
// connection.
func (c config) served(cert tls.Certificate) (bool, error) {
	hc, err := c.httpClient(cert, false)
	if err != nil {
		return false, err
	}
	return get(hc, "https://"+c.addr+"/") == nil, nil
}

type stats struct {
	mu       sync.Mutex
	ok       int
	failed   int
	lat      []time.Duration
	failures []string
}

func (s *stats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		if len(s.failures) < 10 {
			s.failures = append(s.failures, err.Error())
		}
		return
	}
	s.ok++
	s.lat = append(s.lat, d)
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

func run(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	url := "https://" + c.addr + "/"
	var st stats
	var wg sync.WaitGroup

	// Valid clients.
	for i := range c.workers {
		cert, err := c.issueClient(fmt.Sprintf("valid-%d", i))
		if err != nil {
			return err
		}
		hc, err := c.httpClient(cert, i%2 == 0)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				err := get(hc, url)
				if ctx.Err() != nil && err != nil {
					return // the run ended mid-request
				}
				st.add(time.Since(start), err)
			}
		}()
	}

	began := time.Now()
	samples := []sample{{0, rssKB(c.pid)}}
	var rotations, rotateErrs atomic.Int64
	var revokeMu sync.Mutex
	var revoked []tls.Certificate
	var propagation []time.Duration
	var revokedServed, probes int
	var revokeErrs []string

	wg.Add(1)
	go func() { // rotation
		defer wg.Done()
		tick := time.NewTicker(c.rotate)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				err := c.certplane("pki", "server", "--ca", c.caDir, "--dns", "localhost", "--ip", "127.0.0.1",
					"--out", filepath.Join(c.certs, "server", "default"))
				if err != nil {
					rotateErrs.Add(1)
					continue
				}
				rotations.Add(1)
			}
		}
	}()
	wg.Add(1)
	go func() { // revocation and probes
		defer wg.Done()
		tick := time.NewTicker(c.revoke)
		defer tick.Stop()
		fail := func(err error) {
			revokeMu.Lock()
			revokeErrs = append(revokeErrs, err.Error())
			revokeMu.Unlock()
		}
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			name := fmt.Sprintf("revoked-%d", n)
			cert, err := c.issueClient(name)
			if err != nil {
				fail(err)
				continue
			}
			// Served before its revocation: its refusal below is the CRL's doing.
			if ok, err := c.served(cert); err != nil || !ok {
				fail(fmt.Errorf("%s not served before revocation (err %v)", name, err))
				continue
			}
			at := time.Now()
			if err := c.certplane("pki", "revoke", "--ca", c.caDir, "--cert", filepath.Join(c.clients, name+".crt"),
				"--crl-out", filepath.Join(c.certs, "trust", "clients", "ca.crl")); err != nil {
				fail(err)
				continue
			}
			for {
				ok, err := c.served(cert)
				if err != nil {
					fail(err)
					break
				}
				if !ok {
					revokeMu.Lock()
					propagation = append(propagation, time.Since(at))
					revoked = append(revoked, cert)
					revokeMu.Unlock()
					break
				}
				if time.Since(at) > c.grace {
					fail(fmt.Errorf("%s still served %s after its revocation", name, c.grace))
					break
				}
			}
			// Every client revoked so far stays refused.
			revokeMu.Lock()
			all := slices.Clone(revoked)
			revokeMu.Unlock()
			for _, rc := range all {
				ok, err := c.served(rc)
				revokeMu.Lock()
				probes++
				if ok || err != nil {
					revokedServed++
				}
				revokeMu.Unlock()
			}
		}
	}()
	wg.Add(1)
	go func() { // RSS
		defer wg.Done()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				samples = append(samples, sample{time.Since(began).Round(time.Second), rssKB(c.pid)})
			}
		}
	}()
	wg.Wait()
	samples = append(samples, sample{time.Since(began).Round(time.Second), rssKB(c.pid)})
	return report(c, outcome{
		st: &st, samples: samples, propagation: propagation, probes: probes, revokedServed: revokedServed,
		revokeErrs: revokeErrs, rotations: rotations.Load(), rotateErrs: rotateErrs.Load(),
	})
}

type sample struct {
	at  time.Duration
	rss int // KiB; -1 when the proxy was gone
}

// outcome is what one soak measured.
type outcome struct {
	st                    *stats
	samples               []sample
	propagation           []time.Duration
	probes, revokedServed int
	revokeErrs            []string
	rotations, rotateErrs int64
}

// midSample is the first sample at or after half the run: warm-up is over.
func midSample(samples []sample, d time.Duration) sample {
	for _, s := range samples {
		if s.at >= d/2 {
			return s
		}
	}
	return samples[len(samples)-1]
}

// report prints the figures and the verdict line, and returns the problems.
func report(c config, o outcome) error {
	st := o.st
	slices.Sort(st.lat)
	pct := func(p float64) time.Duration {
		if len(st.lat) == 0 {
			return 0
		}
		return st.lat[min(len(st.lat)-1, int(p*float64(len(st.lat))))].Round(time.Microsecond)
	}
	slices.Sort(o.propagation)
	total := st.ok + st.failed
	fmt.Printf("soak: %s, %d valid clients (half keep-alive, half a new TLS connection per request)\n", c.duration, c.workers)
	fmt.Printf("valid requests: %d, failed: %d (%.4f%% success), p50 %s, p99 %s\n",
		total, st.failed, 100*float64(st.ok)/float64(max(total, 1)), pct(0.5), pct(0.99))
	fmt.Printf("server certificate rotations: %d (every %s), failed rotations: %d\n", o.rotations, c.rotate, o.rotateErrs)
	fmt.Printf("revocations: %d (every %s); revoked-client probes after revocation: %d, served: %d\n", len(o.propagation), c.revoke, o.probes, o.revokedServed)
	if len(o.propagation) > 0 {
		fmt.Printf("revocation to refusal: min %s, max %s\n", o.propagation[0].Round(time.Millisecond), o.propagation[len(o.propagation)-1].Round(time.Millisecond))
	}
	start, mid, end := o.samples[0], midSample(o.samples, c.duration), o.samples[len(o.samples)-1]
	growth := 100 * float64(end.rss-mid.rss) / float64(max(mid.rss, 1))
	fmt.Printf("proxy RSS: start %d KiB, middle (%s) %d KiB, end (%s) %d KiB: %+.1f%% after warm-up (flat: at most %+.0f%%)\n",
		start.rss, mid.at, mid.rss, end.at, end.rss, growth, c.rssGrowth)
	var all []string
	gone := false
	for _, s := range o.samples {
		all = append(all, fmt.Sprintf("%s=%d", s.at, s.rss))
		gone = gone || s.rss < 0
	}
	fmt.Printf("RSS samples (KiB): %s\n", strings.Join(all, " "))

	var problems []string
	if st.failed > 0 {
		problems = append(problems, fmt.Sprintf("%d valid requests failed, e.g. %s", st.failed, strings.Join(st.failures, "; ")))
	}
	if o.revokedServed > 0 {
		problems = append(problems, fmt.Sprintf("%d probes of revoked clients were served", o.revokedServed))
	}
	if len(o.propagation) == 0 {
		problems = append(problems, "no revocation took effect: nothing shows revoked clients are refused")
	}
	if len(o.revokeErrs) > 0 {
		problems = append(problems, "revocation: "+strings.Join(o.revokeErrs, "; "))
	}
	if o.rotateErrs > 0 {
		problems = append(problems, fmt.Sprintf("%d rotations failed", o.rotateErrs))
	}
	if gone {
		problems = append(problems, "the proxy process was gone at an RSS sample")
	} else if growth > c.rssGrowth {
		problems = append(problems, fmt.Sprintf("RSS not flat: %+.1f%% from mid-run to the end (limit %+.0f%%)", growth, c.rssGrowth))
	}
	verdict := "PASS"
	if len(problems) > 0 {
		verdict = "FAIL"
	}
	fmt.Printf("soak: %s valid=%d failed=%d revocations=%d revoked_probes=%d revoked_admitted=%d rotations=%d rss_start=%dKiB rss_mid=%dKiB rss_end=%dKiB growth=%+.1f%%\n",
		verdict, total, st.failed, len(o.propagation), o.probes, o.revokedServed, o.rotations, start.rss, mid.rss, end.rss, growth)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}
