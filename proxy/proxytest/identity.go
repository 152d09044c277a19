package proxytest

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// ForgedIdentity are identity headers a client may try to forge: XFCC,
// ALB's passthrough header, ALB's validity header and a made-up member of
// its family, and underscore spellings that WSGI and CGI backends read as
// the real headers. Every value contains "forged".
var ForgedIdentity = map[string]string{
	"X-Forwarded-Client-Cert":         `By=spiffe://forged;Hash=00;Subject="CN=forged"`,
	"X-Amzn-Mtls-Clientcert":          "forged",
	"X-Amzn-Mtls-Clientcert-Subject":  "CN=forged",
	"X-Amzn-Mtls-Clientcert-Validity": "NotBefore=forged;NotAfter=forged",
	"X-Amzn-Mtls-Clientcert-Custom":   "forged",
	"X_Forwarded_Client_Cert":         `By=spiffe://forged;Hash=00;Subject="CN=forged"`,
	"X_Amzn_Mtls_Clientcert_Subject":  "CN=forged",
	"X_Amzn_Mtls_Clientcert_Leaf":     "forged",
}

// AddForgedIdentity sets ForgedIdentity on a request, the names spelt
// exactly as there (not canonicalized), as a raw client would send them.
func AddForgedIdentity(h http.Header) {
	for k, v := range ForgedIdentity {
		h[k] = []string{v}
	}
}

// ForgedIdentityLeaks lists what of ForgedIdentity reached a backend that
// received headers h: any header name with an underscore, and any value
// that is a forged one. Empty means none did.
func ForgedIdentityLeaks(h http.Header) []string {
	var out []string
	for k, vs := range h {
		if strings.Contains(k, "_") {
			out = append(out, fmt.Sprintf("underscore header %s: %q", k, vs))
			continue
		}
		for _, v := range vs {
			if strings.Contains(v, "forged") {
				out = append(out, fmt.Sprintf("forged %s: %q", k, v))
			}
		}
	}
	sort.Strings(out)
	return out
}
