package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/certplane/certplane/pki"
)

func init() {
	register("pki", command{
		summary: "create CAs, server and client certificates, .p12 bundles and CRLs",
		run:     runPKI,
	})
}

type pkiSub struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func pkiSubs() map[string]pkiSub {
	return map[string]pkiSub{
		"ca":     {"create a root CA, or an intermediate under an existing CA", runPKICA},
		"server": {"issue a server certificate into a watched-directory layout", runPKIServer},
		"client": {"issue a client certificate (and a .p12 for browsers)", runPKIClient},
		"revoke": {"revoke a certificate and rewrite the CA's CRL", runPKIRevoke},
		"crl":    {"rewrite the CA's CRL with a fresh nextUpdate", runPKICRL},
	}
}

func pkiUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: certplane pki <ca|server|client|revoke|crl> [flags]")
	fmt.Fprintln(w)
	subs := pkiSubs()
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-7s %s\n", n, subs[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Certificates use ECDSA P-256 unless --key-type says otherwise, SHA-256")
	fmt.Fprintln(w, "signatures, random 128-bit serials, SKI/AKI, and the right keyUsage and EKU.")
	fmt.Fprintln(w, "Files are written atomically; private keys with mode 0600.")
	fmt.Fprintln(w, "Run 'certplane pki <command> --help' for its flags.")
}

func runPKI(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		pkiUsage(stderr)
		return &exitError{code: 2, err: errors.New("missing pki command")}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		pkiUsage(stdout)
		return errHelp
	}
	sub, ok := pkiSubs()[args[0]]
	if !ok {
		pkiUsage(stderr)
		return &exitError{code: 2, err: fmt.Errorf("unknown pki command %q", args[0])}
	}
	return sub.run(args[1:], stdout, stderr)
}

// newFlagSet makes a FlagSet whose --help prints synopsis, description and
// flags. Parse it with parseCLIFlags.
func newFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parseCLIFlags parses args. --help prints the usage to stdout and returns
// errHelp; a bad flag prints the usage to stderr and exits 2. Positional
// arguments are refused unless maxArgs allows them.
func parseCLIFlags(fs *flag.FlagSet, args []string, maxArgs int, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(flagsFirst(fs, args))
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return errHelp
	}
	if err == nil && fs.NArg() > maxArgs {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(maxArgs))
	}
	if err != nil {
		fs.SetOutput(stderr)
		fs.Usage()
		return &exitError{code: 2, err: err}
	}
	return nil
}

// flagsFirst moves flags that follow positional arguments in front of them,
// so `certplane init DIR --listen ADDR` works like `init --listen ADDR DIR`
// (the standard flag package stops at the first positional argument).
// Everything after "--" stays positional. A flag's value is known to follow
// it unless the flag is boolean or written as --name=value.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // unknown: Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue // boolean: no value follows
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(positional) == 0 {
		return flags
	}
	return append(append(flags, "--"), positional...)
}

// usageError reports a missing or invalid flag value with exit status 2.
func usageError(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// stringsFlag is a repeatable flag; each use may also hold a comma-separated
// list.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// durationFlag accepts Go durations (720h, 90m) and whole days (30d).
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string {
	if f.d%(24*time.Hour) == 0 && f.d != 0 {
		return fmt.Sprintf("%dd", f.d/(24*time.Hour))
	}
	return f.d.String()
}

func (f *durationFlag) Set(v string) error {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days {
			return fmt.Errorf("%q is not a whole number of days", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("%q is not a duration (use e.g. 720h or 30d)", v)
		}
	}
	if d <= 0 {
		return fmt.Errorf("%q must be positive", v)
	}
	f.d = d
	return nil
}

func keyTypeFlag(fs *flag.FlagSet) *string {
	names := make([]string, len(pki.KeyTypes))
	for i, k := range pki.KeyTypes {
		names[i] = string(k)
	}
	return fs.String("key-type", string(pki.ECDSAP256), "key algorithm: "+strings.Join(names, ", "))
}

func checkKeyType(v string) (pki.KeyType, error) {
	for _, k := range pki.KeyTypes {
		if string(k) == v {
			return k, nil
		}
	}
	return "", usageError("--key-type %q is not supported (want one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096)", v)
}

// fileNameRE is what a certificate name may be when it becomes a file name.
var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// refuseWatchedTree enforces that a CA private key never lands in a watched
// certificate directory: it refuses dir when dir or one of its ancestors is
// a certs tree (holds server/ or trust/) or sits under certs/{server,client,trust}.
func refuseWatchedTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		base, parent := filepath.Base(p), filepath.Base(filepath.Dir(p))
		if parent == "certs" && (base == "server" || base == "client" || base == "trust") {
			return fmt.Errorf("refusing to put a CA private key in %s: it is inside the watched certificate directory %s", dir, filepath.Dir(p))
		}
		for _, sub := range []string{"server", "trust"} {
			if fi, err := os.Stat(filepath.Join(p, sub)); err == nil && fi.IsDir() && base == "certs" {
				return fmt.Errorf("refusing to put a CA private key in %s: %s is a watched certificate directory", dir, p)
			}
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

func loadCAFlag(dir string) (*pki.CADir, error) {
	if dir == "" {
		return nil, usageError("--ca is required: the CA directory made by 'certplane pki ca'")
	}
	return pki.LoadCADir(dir)
}

// clampValidity keeps a certificate inside its issuer's lifetime: a child
// that outlives its CA would stop verifying at the CA's expiry anyway.
func clampValidity(issuer *x509.Certificate, validity time.Duration, stdout io.Writer) time.Duration {
	notBefore := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	if limit := issuer.NotAfter.Sub(notBefore); validity > limit {
		fmt.Fprintf(stdout, "note: validity shortened to end with the CA %q on %s\n", issuer.Subject.CommonName, issuer.NotAfter.UTC().Format(time.RFC3339))
		return limit
	}
	return validity
}

func runPKICA(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pki ca",
		"certplane pki ca --out DIR [--name NAME] [--intermediate-of DIR] [--key-type T] [--validity D] [--keep] [--crl-url URL] [--ocsp-url URL]",
		`Create a CA directory: ca.crt, ca.key (mode 0600), crl-state.json and, for
an intermediate, chain.pem (the issuers above it). The directory is created
with mode 0700 and must not be inside a watched certs/ tree: put the CA's
certificate (ca.crt) in certs/trust/<store>/ instead. An existing CA is never
overwritten: with --keep, a DIR that already holds a CA is left as it is and
the command succeeds (for containers that run it on every start).`)
	out := fs.String("out", "", "CA directory to create (required)")
	name := fs.String("name", "", `CA common name (default "certplane root CA", or "certplane intermediate CA" with --intermediate-of)`)
	parent := fs.String("intermediate-of", "", "CA directory of the issuing CA: create an intermediate signed by it")
	kt := keyTypeFlag(fs)
	validity := durationFlag{d: 3650 * 24 * time.Hour}
	fs.Var(&validity, "validity", "lifetime, e.g. 3650d or 87600h; an intermediate ends no later than its issuer")
	keep := fs.Bool("keep", false, "succeed without change when DIR already holds a CA")
	urls := addRevocationURLs(fs)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *out == "" {
		return usageError("--out is required: the CA directory to create")
	}
	if *keep {
		if d, err := pki.LoadCADir(*out); err == nil {
			fmt.Fprintf(stdout, "kept CA %q (valid until %s) in %s\n", d.CA.Cert.Subject.CommonName,
				d.CA.Cert.NotAfter.UTC().Format(time.RFC3339), *out)
			return nil
		}
	}
	keyType, err := checkKeyType(*kt)
	if err != nil {
		return err
	}
	if err := refuseWatchedTree(*out); err != nil {
		return err
	}
	o := pki.Options{CommonName: *name, KeyType: keyType, Validity: validity.d}
	if err := urls.apply(&o); err != nil {
		return err
	}
	var ca *pki.CA
	if *parent == "" {
		if o.CommonName == "" {
			o.CommonName = "certplane root CA"
		}
		ca, err = pki.NewRootCA(o)
	} else {
		up, lerr := pki.LoadCADir(*parent)
		if lerr != nil {
			return lerr
		}
		if o.CommonName == "" {
			o.CommonName = "certplane intermediate CA"
		}
		o.Validity = clampValidity(up.CA.Cert, o.Validity, stdout)
		ca, err = up.CA.NewIntermediate(o)
	}
	if err != nil {
		return err
	}
	if _, err := pki.SaveCADir(*out, ca); err != nil {
		return err
	}
	kind := "root CA"
	if *parent != "" {
		kind = "intermediate CA"
	}
	fmt.Fprintf(stdout, "created %s %q (%s, valid until %s) in %s\n", kind, ca.Cert.Subject.CommonName, keyType,
		ca.Cert.NotAfter.UTC().Format(time.RFC3339), *out)
	fmt.Fprintf(stdout, "  trust it: copy %s into certs/trust/<store>/\n", filepath.Join(*out, pki.CACertFile))
	return nil
}

func runPKIServer(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pki server",
		"certplane pki server --ca DIR --name NAME --dns NAME... --ip IP... --out DIR [--key-type T] [--validity D] [--crl-url URL] [--ocsp-url URL]",
		`Issue a serverAuth certificate and write DIR/tls.crt (the leaf, then the
intermediates) and DIR/tls.key (mode 0600): the layout of a watched
certs/server/<name>/ directory and of a kubernetes.io/tls Secret. Existing
files are replaced atomically, so a watcher sees the old or the new pair.`)
	caDir := fs.String("ca", "", "CA directory that signs (required)")
	name := fs.String("name", "", "subject common name (default: the first --dns, else the first --ip)")
	var dns, ips stringsFlag
	fs.Var(&dns, "dns", "DNS name SAN; repeat or comma-separate (at least one --dns or --ip)")
	fs.Var(&ips, "ip", "IP address SAN; repeat or comma-separate")
	out := fs.String("out", "", "output directory, created if missing (required)")
	kt := keyTypeFlag(fs)
	validity := durationFlag{d: 365 * 24 * time.Hour}
	fs.Var(&validity, "validity", "lifetime, e.g. 365d; never beyond the CA's expiry")
	urls := addRevocationURLs(fs)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *out == "" {
		return usageError("--out is required: the directory for tls.crt and tls.key")
	}
	if len(dns) == 0 && len(ips) == 0 {
		return usageError("at least one --dns or --ip is required: clients match the server by its SANs, never by CN")
	}
	keyType, err := checkKeyType(*kt)
	if err != nil {
		return err
	}
	o := pki.Options{CommonName: *name, DNSNames: dns, KeyType: keyType}
	if err := urls.apply(&o); err != nil {
		return err
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usageError("--ip %q is not an IP address", s)
		}
		o.IPs = append(o.IPs, ip)
	}
	d, err := loadCAFlag(*caDir)
	if err != nil {
		return err
	}
	if err := refuseCADir(*out, *caDir); err != nil {
		return err
	}
	o.Validity = clampValidity(d.CA.Cert, validity.d, stdout)
	leaf, err := d.CA.IssueServer(o)
	if err != nil {
		return err
	}
	keyPEM, err := pki.KeyPEM(leaf.Key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	crt, key := filepath.Join(*out, "tls.crt"), filepath.Join(*out, "tls.key")
	if err := pki.WriteFilesAtomic(
		pki.File{Path: crt, Data: leaf.ChainPEM(), Mode: 0o644},
		pki.File{Path: key, Data: keyPEM, Mode: 0o600},
	); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issued server certificate %q (serial %X, SANs %s) by %q\n  %s\n  %s\n",
		leaf.Cert.Subject.CommonName, leaf.Cert.SerialNumber, sanList(leaf.Cert), d.CA.Cert.Subject.CommonName, crt, key)
	return nil
}

// refuseCADir stops leaf files from landing in (and possibly replacing
// files of) the CA directory.
func refuseCADir(out, caDir string) error {
	a, err1 := filepath.Abs(out)
	b, err2 := filepath.Abs(caDir)
	if err1 == nil && err2 == nil && a == b {
		return usageError("--out must not be the CA directory %s", caDir)
	}
	return nil
}

func sanList(c *x509.Certificate) string {
	var s []string
	s = append(s, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		s = append(s, ip.String())
	}
	for _, u := range c.URIs {
		s = append(s, u.String())
	}
	s = append(s, c.EmailAddresses...)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// readPasswordFile reads a PKCS#12 password: the file's content without one
// trailing newline, which must not be empty.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty; put the .p12 password in it", path)
	}
	if strings.ContainsAny(pw, "\n\r") {
		return "", fmt.Errorf("password file %s holds more than one line; put only the password in it", path)
	}
	return pw, nil
}

func runPKIClient(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pki client",
		"certplane pki client --ca DIR --name NAME [--uri URI...] [--dns NAME...] [--email ADDR...] [--p12-password-file FILE [--friendly-name NAME]] --out DIR [--key-type T] [--validity D] [--crl-url URL] [--ocsp-url URL]",
		`Issue a clientAuth certificate whose common name is NAME and write
DIR/NAME.crt (the leaf, then the intermediates) and DIR/NAME.key (mode 0600).
With --p12-password-file, also write DIR/NAME.p12 (mode 0600) for browsers
and keychains: key, certificate and the CA chain, encrypted with AES-256 and
PBKDF2-SHA-256 under the password in FILE (one line). Its friendly name,
which certificate pickers and keychains show, is the common name NAME unless
--friendly-name sets another.`)
	caDir := fs.String("ca", "", "CA directory that signs (required)")
	name := fs.String("name", "", "common name and file name: letters, digits, '.', '_', '-' (required)")
	var uris, dns, emails stringsFlag
	fs.Var(&uris, "uri", "URI SAN, e.g. spiffe://example.org/alice; repeat or comma-separate")
	fs.Var(&dns, "dns", "DNS name SAN; repeat or comma-separate")
	fs.Var(&emails, "email", "email SAN; repeat or comma-separate")
	pwFile := fs.String("p12-password-file", "", "file holding the .p12 password; without it no .p12 is written")
	friendlyName := fs.String("friendly-name", "", "name of the certificate in the .p12, shown by certificate pickers and keychains (default: the common name)")
	out := fs.String("out", "", "output directory, created if missing (required)")
	kt := keyTypeFlag(fs)
	validity := durationFlag{d: 365 * 24 * time.Hour}
	fs.Var(&validity, "validity", "lifetime, e.g. 365d; never beyond the CA's expiry")
	urls := addRevocationURLs(fs)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *name == "" {
		return usageError("--name is required: the client's common name")
	}
	if !fileNameRE.MatchString(*name) {
		return usageError("--name %q must be letters, digits, '.', '_' or '-': it names the files", *name)
	}
	if *out == "" {
		return usageError("--out is required: the directory for NAME.crt and NAME.key")
	}
	keyType, err := checkKeyType(*kt)
	if err != nil {
		return err
	}
	o := pki.Options{CommonName: *name, DNSNames: dns, Emails: emails, KeyType: keyType}
	if err := urls.apply(&o); err != nil {
		return err
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return usageError("--uri %q is not an absolute URI", s)
		}
		o.URIs = append(o.URIs, u)
	}
	for _, e := range emails {
		if !strings.Contains(e, "@") {
			return usageError("--email %q is not an email address", e)
		}
	}
	friendlyNameSet := false
	fs.Visit(func(f *flag.Flag) { friendlyNameSet = friendlyNameSet || f.Name == "friendly-name" })
	if friendlyNameSet {
		if *pwFile == "" {
			return usageError("--friendly-name names the certificate in the .p12: give --p12-password-file too")
		}
		if err := pki.CheckFriendlyName(*friendlyName); err != nil {
			return usageError("--friendly-name: %v", err)
		}
	}
	var password string
	if *pwFile != "" {
		if password, err = readPasswordFile(*pwFile); err != nil {
			return err
		}
	}
	d, err := loadCAFlag(*caDir)
	if err != nil {
		return err
	}
	if err := refuseCADir(*out, *caDir); err != nil {
		return err
	}
	o.Validity = clampValidity(d.CA.Cert, validity.d, stdout)
	leaf, err := d.CA.IssueClient(o)
	if err != nil {
		return err
	}
	files, err := clientFiles(*out, *name, d.CA, leaf, password, *friendlyName)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	if err := pki.WriteFilesAtomic(files...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issued client certificate %q (serial %X, SANs %s) by %q\n", *name, leaf.Cert.SerialNumber, sanList(leaf.Cert), d.CA.Cert.Subject.CommonName)
	for _, f := range files {
		fmt.Fprintf(stdout, "  %s\n", f.Path)
	}
	return nil
}

// clientFiles returns NAME.crt, NAME.key and, with a password, NAME.p12,
// whose friendly name is friendlyName or, when empty, pki.FriendlyName's
// default (the common name).
func clientFiles(dir, name string, ca *pki.CA, leaf *pki.Leaf, password, friendlyName string) ([]pki.File, error) {
	keyPEM, err := pki.KeyPEM(leaf.Key)
	if err != nil {
		return nil, err
	}
	files := []pki.File{
		{Path: filepath.Join(dir, name+".crt"), Data: leaf.ChainPEM(), Mode: 0o644},
		{Path: filepath.Join(dir, name+".key"), Data: keyPEM, Mode: 0o600},
	}
	if password != "" {
		// The whole chain up to the root, so a browser can import it alone.
		if friendlyName == "" {
			friendlyName = pki.FriendlyName(leaf.Cert, name)
		}
		p12, err := pki.PKCS12(leaf, append([]*x509.Certificate{ca.Cert}, ca.Chain...), password, friendlyName)
		if err != nil {
			return nil, err
		}
		files = append(files, pki.File{Path: filepath.Join(dir, name+".p12"), Data: p12, Mode: 0o600})
	}
	return files, nil
}

func crlFlags(fs *flag.FlagSet) (caDir, crlOut *string, next *durationFlag) {
	caDir = fs.String("ca", "", "CA directory whose CRL this is (required)")
	crlOut = fs.String("crl-out", "", "CRL file to write, PEM, e.g. certs/trust/<store>/ca.crl (required)")
	next = &durationFlag{d: 90 * 24 * time.Hour}
	fs.Var(next, "next-update", "time until the CRL's nextUpdate; rerun 'pki crl' before then, an expired CRL fails closed")
	return caDir, crlOut, next
}

func runPKIRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pki revoke",
		"certplane pki revoke --ca DIR (--cert FILE | --serial HEX) [--reason R] --crl-out FILE [--next-update D]",
		`Revoke the certificate in FILE (PEM or DER; the first certificate of a
chain file), or the serial HEX when the certificate is lost (as
'openssl x509 -serial' prints it; colons allowed), and write the CA's CRL
with the next CRL number. With --cert the CA must have issued the
certificate. --reason records why (RFC 5280 reasonCode, OpenSSL's names:
`+strings.Join(pki.ReasonNames(), ", ")+`). Revoking twice keeps the first
revocation time and reason.`)
	caDir, crlOut, next := crlFlags(fs)
	certFile := fs.String("cert", "", "certificate to revoke (this or --serial)")
	serialHex := fs.String("serial", "", "serial number to revoke, hex (this or --cert)")
	reasonName := fs.String("reason", "unspecified", "revocation reason: "+strings.Join(pki.ReasonNames(), ", "))
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if (*certFile == "") == (*serialHex == "") {
		return usageError("give exactly one of --cert FILE or --serial HEX: what to revoke")
	}
	if *crlOut == "" {
		return usageError("--crl-out is required: where to write the CRL")
	}
	reason, ok := pki.ParseReason(*reasonName)
	if !ok {
		return usageError("--reason %q: use one of %s", *reasonName, strings.Join(pki.ReasonNames(), ", "))
	}
	d, err := loadCAFlag(*caDir)
	if err != nil {
		return err
	}
	var (
		added bool
		what  string
	)
	if *certFile != "" {
		certs, err := pki.ReadCertsFile(*certFile)
		if err != nil {
			return err
		}
		cert := certs[0]
		if added, err = d.RevokeWithReason(cert, reason, time.Now()); err != nil {
			return fmt.Errorf("%s: %w", *certFile, err)
		}
		what = fmt.Sprintf("%q (serial %X)", cert.Subject.CommonName, cert.SerialNumber)
	} else {
		serial, err := parseSerial(*serialHex)
		if err != nil {
			return usageError("--serial %q: %v", *serialHex, err)
		}
		if added, err = d.RevokeSerial(serial, reason, time.Now()); err != nil {
			return err
		}
		what = fmt.Sprintf("serial %X", serial)
	}
	crl, err := d.WriteCRL(*crlOut, time.Now(), next.d)
	if err != nil {
		return err
	}
	verb := "revoked"
	if !added {
		verb = "was already revoked:"
	}
	if added && reason != pki.Unspecified {
		what += ", reason " + reason.String()
	}
	fmt.Fprintf(stdout, "%s %s\n", verb, what)
	printCRL(stdout, *crlOut, crl)
	return nil
}

// parseSerial reads a serial as OpenSSL prints it: hex, optionally with a
// "serial=" or "0x" prefix and colons between bytes.
func parseSerial(s string) (*big.Int, error) {
	h := strings.TrimPrefix(strings.TrimSpace(s), "serial=")
	h = strings.TrimPrefix(strings.TrimPrefix(h, "0x"), "0X")
	h = strings.ReplaceAll(h, ":", "")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || strings.HasPrefix(h, "-") || strings.HasPrefix(h, "+") {
		return nil, fmt.Errorf("not a hex serial number")
	}
	if n.Sign() <= 0 {
		return nil, fmt.Errorf("a certificate serial is a positive integer")
	}
	return n, nil
}

func runPKICRL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pki crl",
		"certplane pki crl --ca DIR --crl-out FILE [--next-update D]",
		`Write the CA's CRL again with the next CRL number, thisUpdate now and a
fresh nextUpdate, listing every certificate revoked so far. Run it on a
schedule well before nextUpdate.`)
	caDir, crlOut, next := crlFlags(fs)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *crlOut == "" {
		return usageError("--crl-out is required: where to write the CRL")
	}
	d, err := loadCAFlag(*caDir)
	if err != nil {
		return err
	}
	crl, err := d.WriteCRL(*crlOut, time.Now(), next.d)
	if err != nil {
		return err
	}
	printCRL(stdout, *crlOut, crl)
	return nil
}

func printCRL(w io.Writer, path string, crl *x509.RevocationList) {
	fmt.Fprintf(w, "wrote CRL number %v of %q to %s: %d revoked, next update %s\n",
		crl.Number, crl.Issuer.CommonName, path, len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.RFC3339))
}
