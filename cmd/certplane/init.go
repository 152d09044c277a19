package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certplane/certplane/pki"
)

func init() {
	register("init", command{
		summary: "scaffold a working example: CA, certificates, CRL and config",
		run:     runInit,
	})
}

// initOptions are the knobs of the scaffold.
type initOptions struct {
	listen   string   // the listener address
	backends []string // the demo backend endpoints
	force    bool
}

var defaultInitBackends = []string{"127.0.0.1:9001", "127.0.0.1:9002"}

const defaultInitListen = "127.0.0.1:8443"

func runInit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init",
		"certplane init [--listen ADDR] [--backends ADDR,ADDR] [--force | --keep] DIR",
		`Scaffold a complete working example in DIR:

  DIR/pki/                            the CA (ca.crt, ca.key, crl-state.json); never watched
  DIR/certs/server/default/tls.crt    server certificate for localhost and 127.0.0.1
  DIR/certs/server/default/tls.key
  DIR/certs/trust/clients/ca.pem      the CA clients must chain to
  DIR/certs/trust/clients/ca.crl      its CRL, revoking mallory
  DIR/clients/alice.{crt,key,p12}     a valid client; the .p12 password is in
  DIR/clients/p12-password.txt        (random)
  DIR/clients/mallory.{crt,key}       a revoked client
  DIR/config/listeners.yaml           listener "https" (client_auth verify) and backend "demo"

DIR must be empty or missing unless --force is given. With --keep, a DIR that
already holds an example written by init is left as it is (exit 0), so a
container can run init on every start.`)
	listen := fs.String("listen", defaultInitListen, "listener address written to config/listeners.yaml")
	backends := stringsFlag{}
	fs.Var(&backends, "backends", `backend endpoints host:port, comma-separated or repeated (default "`+strings.Join(defaultInitBackends, ",")+`")`)
	force := fs.Bool("force", false, "write into a non-empty DIR, replacing the files init writes (and its CA)")
	keep := fs.Bool("keep", false, "leave DIR as it is when it already holds an init example")
	if err := parseCLIFlags(fs, args, 1, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("DIR is required: certplane init DIR")
	}
	o := initOptions{listen: *listen, backends: backends, force: *force}
	if len(o.backends) == 0 {
		o.backends = defaultInitBackends
	}
	dir := fs.Arg(0)
	if *force && *keep {
		return usageError("--force and --keep contradict each other")
	}
	if *keep && isInitExample(dir) {
		fmt.Fprintf(stdout, "%s already holds a certplane example; kept as it is\n", dir)
		return nil
	}
	if err := initDir(dir, o, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a certplane example to %s\n", dir)
	printTryCommands(stdout, dir, o.listen)
	return nil
}

// isInitExample reports whether dir holds the CA and config init writes.
func isInitExample(dir string) bool {
	_, errCA := os.Stat(filepath.Join(dir, "pki", pki.CAKeyFile))
	_, errCfg := os.Stat(filepath.Join(dir, "config", "listeners.yaml"))
	return errCA == nil && errCfg == nil
}

// checkHostPort validates an address the config loader will accept: an IP
// literal host (or, for backends, a DNS name) and a numeric port.
func checkHostPort(flagName, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError("%s %q: %v", flagName, addr, err)
	}
	if net.ParseIP(host) == nil && (flagName != "--backends" || !isDNSName(host)) {
		if flagName == "--backends" {
			return usageError("%s %q: host must be an IP address or a DNS name", flagName, addr)
		}
		return usageError("%s %q: host must be an IP address", flagName, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return usageError("%s %q: port must be 1-65535", flagName, addr)
	}
	return nil
}

// initDir writes the scaffold. Every file is staged before any is renamed
// into place, so a failure leaves no partial set of files behind.
func initDir(dir string, o initOptions, now time.Time) error {
	if err := checkHostPort("--listen", o.listen); err != nil {
		return err
	}
	for _, b := range o.backends {
		if err := checkHostPort("--backends", b); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0 && !o.force:
		return fmt.Errorf("%s is not empty; pick a new directory or pass --force to overwrite", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", dir, err)
	}
	caDir := filepath.Join(dir, "pki")
	ca, err := pki.NewRootCA(pki.Options{CommonName: "certplane example CA", Organization: "certplane example"})
	if err != nil {
		return err
	}
	server, err := ca.IssueServer(pki.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return err
	}
	alice, err := ca.IssueClient(pki.Options{CommonName: "alice"})
	if err != nil {
		return err
	}
	mallory, err := ca.IssueClient(pki.Options{CommonName: "mallory"})
	if err != nil {
		return err
	}
	d := pki.NewCADir(caDir, ca)
	if _, err := d.Revoke(mallory.Cert, now); err != nil {
		return err
	}
	crl, err := d.SignCRL(now, 90*24*time.Hour)
	if err != nil {
		return err
	}
	files, err := d.Files()
	if err != nil {
		return err
	}
	serverKey, err := pki.KeyPEM(server.Key)
	if err != nil {
		return err
	}
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return fmt.Errorf("generate .p12 password: %w", err)
	}
	password := hex.EncodeToString(pw[:])
	clients := filepath.Join(dir, "clients")
	aliceFiles, err := clientFiles(clients, "alice", ca, alice, password, "")
	if err != nil {
		return err
	}
	malloryFiles, err := clientFiles(clients, "mallory", ca, mallory, "", "")
	if err != nil {
		return err
	}
	serverDir := filepath.Join(dir, "certs", "server", "default")
	trustDir := filepath.Join(dir, "certs", "trust", "clients")
	files = append(files,
		pki.File{Path: filepath.Join(serverDir, "tls.crt"), Data: server.ChainPEM(), Mode: 0o644},
		pki.File{Path: filepath.Join(serverDir, "tls.key"), Data: serverKey, Mode: 0o600},
		pki.File{Path: filepath.Join(trustDir, "ca.pem"), Data: pki.CertPEM(ca.Cert), Mode: 0o644},
		pki.File{Path: filepath.Join(trustDir, "ca.crl"), Data: pki.CRLPEM(crl), Mode: 0o644},
		pki.File{Path: filepath.Join(clients, "p12-password.txt"), Data: []byte(password + "\n"), Mode: 0o600},
		pki.File{Path: filepath.Join(dir, "config", "listeners.yaml"), Data: []byte(initConfigYAML(o.listen, o.backends)), Mode: 0o644},
	)
	files = append(files, aliceFiles...)
	files = append(files, malloryFiles...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, sub := range []struct {
		path string
		mode os.FileMode
	}{{caDir, 0o700}, {serverDir, 0o755}, {trustDir, 0o755}, {clients, 0o700}, {filepath.Join(dir, "config"), 0o755}} {
		if err := os.MkdirAll(sub.path, sub.mode); err != nil {
			return fmt.Errorf("create %s: %w", sub.path, err)
		}
	}
	return pki.WriteFilesAtomic(files...)
}

// initConfigYAML is config/listeners.yaml of the scaffold. Its schema is the
// config loader's (docs/configuration.md).
func initConfigYAML(listen string, backends []string) string {
	quoted := make([]string, len(backends))
	for i, b := range backends {
		quoted[i] = strconv.Quote(b)
	}
	return `# Written by 'certplane init'. One HTTPS listener that requires a client
# certificate from the "clients" trust store (certs/trust/clients: CA + CRL),
# forwards the client's identity in x-forwarded-client-cert, and balances
# requests round robin over the healthy endpoints of backend "demo".
listeners:
  - name: https
    address: ` + listen + `
    certificates: [default]
    client_auth:
      mode: verify
      trust_store: clients
    client_cert_headers: [xfcc]
    routes:
      - {path_prefix: /, backend: demo}
backends:
  - name: demo
    endpoints: [` + strings.Join(quoted, ", ") + `]
    health_check: {path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
`
}

// printTryCommands prints the curl commands that show mTLS at work against
// an init directory.
func printTryCommands(w io.Writer, dir, listen string) {
	_, port, _ := net.SplitHostPort(listen)
	url := "https://localhost:" + port + "/"
	ca := filepath.Join(dir, "certs", "trust", "clients", "ca.pem")
	c := filepath.Join(dir, "clients")
	fmt.Fprintf(w, `
With the proxy on %s, try:

  # alice: valid certificate, answered by backend 1 then backend 2 (round robin)
  curl --cacert %s --cert %s --key %s %s

  # mallory: revoked by the CRL, refused during the TLS handshake
  curl --cacert %s --cert %s --key %s %s

  # no client certificate: refused during the TLS handshake
  curl --cacert %s %s

  # browsers: import %s (password in %s)
`, listen,
		ca, filepath.Join(c, "alice.crt"), filepath.Join(c, "alice.key"), url,
		ca, filepath.Join(c, "mallory.crt"), filepath.Join(c, "mallory.key"), url,
		ca, url,
		filepath.Join(c, "alice.p12"), filepath.Join(c, "p12-password.txt"))
}

// isDNSName accepts RFC 1123 host names: letters, digits and hyphens in
// dot-separated labels of 1 to 63 characters, not starting or ending with a
// hyphen.
func isDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
