// Command crlgen adds random revoked serials to a CA directory made by
// `certplane pki ca` and writes its CRL, for benchmarks that need a large
// CRL: `certplane pki revoke` rewrites the CRL once per certificate, which
// is quadratic for 100,000 entries. It uses the pki package's CA directory
// format, so a later `certplane pki revoke` on the same CA keeps the entries.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/certplane/certplane/pki"
)

func main() {
	caDir := flag.String("ca", "", "CA directory (certplane pki ca --out)")
	out := flag.String("crl-out", "", "CRL file to write (PEM)")
	n := flag.Int("count", 100_000, "random serials to add")
	next := flag.Duration("next-update", 30*24*time.Hour, "time until the CRL's nextUpdate")
	flag.Parse()
	if *caDir == "" || *out == "" || *n < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*caDir, *out, *n, *next); err != nil {
		fmt.Fprintln(os.Stderr, "crlgen:", err)
		os.Exit(1)
	}
}

func run(caDir, out string, n int, next time.Duration) error {
	d, err := pki.LoadCADir(caDir)
	if err != nil {
		return err
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for range n {
		s, err := pki.RandomSerial()
		if err != nil {
			return err
		}
		d.State.Revoked = append(d.State.Revoked, pki.Revoked{Serial: s, At: at})
	}
	sort.Slice(d.State.Revoked, func(i, j int) bool { return d.State.Revoked[i].Serial.Cmp(d.State.Revoked[j].Serial) < 0 })
	crl, err := d.WriteCRL(out, time.Now(), next)
	if err != nil {
		return fmt.Errorf("write CRL %s: %w", out, err)
	}
	fmt.Printf("%s: %d revoked serials, CRL number %v\n", out, len(crl.RevokedCertificateEntries), crl.Number)
	return nil
}
