package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/certplane/certplane/config"
)

func init() {
	register("check", command{
		summary: "validate the certificate and config directories; print what would be served",
		run:     runCheck,
	})
}

func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "certplane check --certs DIR --config DIR [--state-dir DIR] [--admin-address ADDR]",
		`Load and validate the certificate directory and the config directory exactly
as certplane serve does, print what would be served (per listener: address,
TLS policy, certificates with subject, SANs and expiry, client-auth mode, trust
store with CA count and CRL nextUpdate, routes to backends and endpoints),
then every problem and warning, each naming its file. A backend endpoint that
is one of the config's own listeners is a problem; one on an admin endpoint
given with --admin-address is a warning.

Exit status: 0 when nothing blocks any listener, 1 when a problem is found.`)
	certs := fs.String("certs", "certs", "certificate directory: server/, client/ and trust/")
	cfg := fs.String("config", "config", "config directory: *.yaml and *.yml")
	admins := stringsFlag{}
	fs.Var(&admins, "admin-address", "an admin endpoint the data plane runs (serve's, the proxy's or Envoy's), host:port; a backend on it is a warning (comma-separated or repeated)")
	trust := addTrustFlags(fs, true)
	dataPlane := fs.String("data-plane", "envoy", "as serve's --data-plane: envoy refuses listeners with client_auth.ocsp mode require or an issuer entry in allow/subjects; proxy (certplane proxy only) serves them")
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *dataPlane != "envoy" && *dataPlane != "proxy" {
		return usageError("--data-plane %q: want envoy or proxy", *dataPlane)
	}
	mem, err := config.NewTrustMemory(trust.stateDir, true)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--state-dir: %w", err)}
	}
	ld := config.Loader{Trust: mem, MaxTrustStoreSize: trust.maxStore.n, AdminAddresses: admins, ProxyOnly: *dataPlane == "proxy"}
	if trust.stateDir != "" {
		// What serve fetched (crl_fetch) is served: check it too.
		ld.FetchedDir = config.FetchedCRLDir(trust.stateDir)
	}
	m, err := ld.Load(*certs, *cfg)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	printCheck(stdout, m, time.Now())
	if n := len(m.Problems); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d problem%s found", n, checkPlural(n))}
	}
	return nil
}

// nonEmpty is the one-element list of s, or none when s is empty (a flag
// that turns a server off).
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func checkPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// printModel writes what would be served, then every problem and warning.
func printCheck(w io.Writer, m *config.Model, now time.Time) {
	served := map[string]bool{}
	for _, l := range m.Listeners {
		served[l.Name] = true
		printCheckListener(w, m, l, now)
	}
	var blocked []string
	for name := range m.Sources {
		if !served[name] {
			blocked = append(blocked, name)
		}
	}
	sort.Strings(blocked)
	for _, name := range blocked {
		fmt.Fprintf(w, "listener %s (%s): NOT SERVED, see problems\n\n", name, m.Sources[name])
	}
	printCheckProblems(w, "problems", m.Problems)
	printCheckProblems(w, "warnings", m.Warnings)
	fmt.Fprintf(w, "%d listener%s served, %d blocked, %d problem%s, %d warning%s\n",
		len(m.Listeners), checkPlural(len(m.Listeners)), len(blocked),
		len(m.Problems), checkPlural(len(m.Problems)), len(m.Warnings), checkPlural(len(m.Warnings)))
}

func printCheckListener(w io.Writer, m *config.Model, l *config.Listener, now time.Time) {
	fmt.Fprintf(w, "listener %s on %s (%s)\n", l.Name, l.Address, l.SourceFile)
	alpn := "http/1.1"
	if l.HTTP2 {
		alpn = "h2,http/1.1"
	}
	tls := fmt.Sprintf("%s, %s to %s", l.TLS.Name, l.TLS.MinVersion, l.TLS.MaxVersion)
	if len(l.TLS.CipherSuites) > 0 {
		tls += ", TLS 1.2 suites " + strings.Join(l.TLS.CipherSuites, ":")
	}
	fmt.Fprintf(w, "  tls: %s; alpn %s\n", tls, alpn)
	printCheckServerNames(w, l)
	for i, name := range l.Certificates {
		kp := m.Servers[name]
		role := "default"
		if i > 0 {
			role = "by SNI"
		}
		leaf := kp.Chain[0]
		fmt.Fprintf(w, "  certificate %s (%s): %s; SANs %s; expires %s (%s); chain of %d\n",
			name, role, leaf.Subject, config.SANs(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), checkUntil(leaf.NotAfter, now), len(kp.Chain))
	}
	ca := l.ClientAuth
	fmt.Fprintf(w, "  client auth: %s", ca.Mode)
	if ts := m.Trust[ca.TrustStore]; ts != nil {
		fmt.Fprintf(w, ", trust store %s: %s", ts.Name, describeCheckTrust(ts, now))
		if len(ts.CRLs) > 0 {
			fmt.Fprintf(w, ", crl %s", ca.CRL)
		}
	}
	if len(ca.SubjectAltNames) > 0 {
		var rules []string
		for _, s := range ca.SubjectAltNames {
			rules = append(rules, checkSANRule(s))
		}
		fmt.Fprintf(w, ", SAN allow-list [%s]", strings.Join(rules, "; "))
	}
	if n := len(ca.CertificateHashes) + len(ca.SPKIHashes); n > 0 {
		fmt.Fprintf(w, ", %d pin%s", n, checkPlural(n))
	}
	if ca.AllowExpired {
		fmt.Fprint(w, ", expired client certificates allowed")
	}
	if ca.MaxVerifyDepth != nil {
		fmt.Fprintf(w, ", max verify depth %d", *ca.MaxVerifyDepth)
	}
	if len(ca.Subjects) > 0 {
		fmt.Fprintf(w, ", subjects (403 otherwise) %s", checkIdentityRules(ca.Subjects))
	}
	fmt.Fprintln(w)
	if len(l.ClientCertHeaders) > 0 {
		hs := make([]string, len(l.ClientCertHeaders))
		for i, h := range l.ClientCertHeaders {
			hs[i] = h.String()
		}
		fmt.Fprintf(w, "  client certificate headers: %s%s\n", strings.Join(hs, ", "), checkXFCC(l))
	}
	for _, r := range l.Routes {
		b := m.Backends[r.Backend]
		allow := ""
		if len(r.Allow) > 0 {
			allow = " allow " + checkIdentityRules(r.Allow)
		}
		fmt.Fprintf(w, "  route %s%s -> backend %s: %s\n", describeCheckRoute(r), allow, r.Backend, describeCheckBackend(b))
	}
	fmt.Fprintln(w)
}

func describeCheckTrust(ts *config.TrustStore, now time.Time) string {
	s := fmt.Sprintf("%d CA%s", len(ts.CAs), checkPlural(len(ts.CAs)))
	if len(ts.CRLs) == 0 {
		return s + ", no CRL"
	}
	var crls []string
	for _, rl := range ts.CRLs {
		next := "no nextUpdate"
		if !rl.NextUpdate.IsZero() {
			next = "next update " + rl.NextUpdate.UTC().Format(time.RFC3339) + " (" + checkUntil(rl.NextUpdate, now) + ")"
		}
		crls = append(crls, fmt.Sprintf("%s, %d revoked, %s", rl.Issuer, rl.Revoked, next))
	}
	return fmt.Sprintf("%s, %d CRL%s [%s]", s, len(ts.CRLs), checkPlural(len(ts.CRLs)), strings.Join(crls, "; "))
}

func describeCheckBackend(b *config.Backend) string {
	var eps []string
	for _, e := range b.Endpoints {
		eps = append(eps, fmt.Sprintf("%s:%d", e.Host, e.Port))
		if !e.IsIP() {
			eps[len(eps)-1] += " (DNS)"
		}
	}
	s := strings.ReplaceAll(b.LBPolicy.String(), "_", " ") + " over " + strings.Join(eps, ", ")
	if hc := b.HealthCheck; hc != nil {
		s += fmt.Sprintf("; health check GET %s every %s, timeout %s, healthy after %d, unhealthy after %d",
			hc.Path, hc.Interval, hc.Timeout, hc.HealthyThreshold, hc.UnhealthyThreshold)
	}
	if t := b.TLS; t != nil {
		s += "; TLS verified by trust store " + t.TrustStore
		if t.Certificate != "" {
			s += ", client certificate " + t.Certificate
		}
		if t.SNI != "" {
			s += ", SNI " + t.SNI
		}
	}
	return s
}

func checkSANRule(s config.SANMatcher) string {
	for _, kv := range [][2]string{{"exact", s.Exact}, {"prefix", s.Prefix}, {"suffix", s.Suffix}, {"contains", s.Contains}, {"regex", s.Regex}} {
		if kv[1] != "" {
			return fmt.Sprintf("%s %s %q", s.Type, kv[0], kv[1])
		}
	}
	return s.Type.String()
}

func checkUntil(t, now time.Time) string {
	d := t.Sub(now)
	if d < 0 {
		return "past"
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

func printCheckProblems(w io.Writer, kind string, ps []config.Problem) {
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(w, "%s (%d):\n", kind, len(ps))
	for _, p := range ps {
		who := "file"
		if p.Listener != "" {
			who = "listener " + p.Listener
		}
		fmt.Fprintf(w, "  [%s] %v\n", who, p.Err)
	}
	fmt.Fprintln(w)
}
