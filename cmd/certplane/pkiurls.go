package main

import (
	"flag"
	"net/url"

	"github.com/certplane/certplane/pki"
)

// revocationURLs are the --crl-url and --ocsp-url flags of the pki
// commands that issue certificates: where relying parties find the CRL
// covering the certificate (CRL Distribution Points) and its OCSP
// responder (Authority Information Access).
type revocationURLs struct {
	crl, ocsp stringsFlag
}

func addRevocationURLs(fs *flag.FlagSet) *revocationURLs {
	r := &revocationURLs{}
	fs.Var(&r.crl, "crl-url", "http(s) URL of the issuing CA's CRL, embedded as CRL Distribution Point (crl_fetch fetches it); repeat or comma-separate")
	fs.Var(&r.ocsp, "ocsp-url", "http(s) URL of the issuing CA's OCSP responder, embedded in Authority Information Access (client_auth.ocsp asks it); repeat or comma-separate")
	return r
}

// apply checks the URLs and puts them in o.
func (r *revocationURLs) apply(o *pki.Options) error {
	for _, f := range []struct {
		name string
		urls []string
		dst  *[]string
	}{{"--crl-url", r.crl, &o.CRLURLs}, {"--ocsp-url", r.ocsp, &o.OCSPURLs}} {
		for _, s := range f.urls {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError("%s %q is not an http:// or https:// URL", f.name, s)
			}
			*f.dst = append(*f.dst, s)
		}
	}
	return nil
}
