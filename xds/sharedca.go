package xds

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"

	"github.com/certplane/certplane/config"
)

// SharedClientCAWarnings warns, once per data-plane trust store, when a CA
// of the xDS client CA file caFile is also a CA of that store, or issued
// one of its CAs, or was issued by one. A client certificate that a
// listener admits could then open an xDS stream and read every private key
// served. The warnings name caFile, so they reach the log and /status as
// any other Model warning. A caFile that cannot be loaded gives none:
// Listen has already refused it.
func SharedClientCAWarnings(m *config.Model, caFile string) []config.Problem {
	if caFile == "" {
		return nil
	}
	ts, err := loadClientTrust(caFile, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil
	}
	var out []config.Problem
	for _, name := range sortedKeys(m.Trust) {
		store := m.Trust[name]
		if why := sharedCA(ts.CAs, store.CAs, name); why != "" {
			out = append(out, config.Problem{File: caFile, Err: fmt.Errorf(
				"%s: %s (%s): a client certificate that a listener admits could open an xDS stream and read every private key served; give xDS clients a CA of their own",
				caFile, why, strings.Join(store.Files, ", "))})
		}
	}
	return out
}

// sharedCA says how the xDS client CAs and a store's CAs overlap, or "".
func sharedCA(xdsCAs, storeCAs []*x509.Certificate, store string) string {
	for _, x := range xdsCAs {
		for _, d := range storeCAs {
			switch {
			case sameCA(x, d):
				return fmt.Sprintf("xDS client CA %q is also a CA of trust store %q", x.Subject.String(), store)
			case d.CheckSignatureFrom(x) == nil:
				return fmt.Sprintf("xDS client CA %q issued CA %q of trust store %q", x.Subject.String(), d.Subject.String(), store)
			case x.CheckSignatureFrom(d) == nil:
				return fmt.Sprintf("xDS client CA %q was issued by CA %q of trust store %q", x.Subject.String(), d.Subject.String(), store)
			}
		}
	}
	return ""
}

// sameCA compares name and key: a CA reissued with the same key signs the
// same certificates.
func sameCA(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubject, b.RawSubject) && bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}
