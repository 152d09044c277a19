package crlfetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/certplane/certplane/crl"
	"github.com/certplane/certplane/pemder"
)

// Failure reasons: the reason label of certplane_crl_fetch_failures_total.
const (
	ReasonHTTP        = "http"         // no answer: DNS, connect, TLS, timeout
	ReasonStatus      = "status"       // an answer other than 200
	ReasonTooLarge    = "too_large"    // over the size limit
	ReasonParse       = "parse"        // not one PEM or DER CRL
	ReasonNotAdmitted = "not_admitted" // crl.Admit refused it (signer, extensions)
	ReasonExpired     = "expired"      // nextUpdate already passed
	ReasonNotYetValid = "not_yet_valid"
	ReasonOlder       = "older"    // older than the CRL kept: never served
	ReasonWrite       = "write"    // the state directory could not be written
	ReasonNoStateDir  = "no_state" // serve has no --state-dir
)

// fetchError is a failed fetch with its metric reason.
type fetchError struct {
	reason string
	err    error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func fail(reason string, format string, a ...any) error {
	return &fetchError{reason: reason, err: fmt.Errorf(format, a...)}
}

func reasonOf(err error) string {
	var fe *fetchError
	if errors.As(err, &fe) {
		return fe.reason
	}
	return ReasonHTTP
}

// maxRedirects bounds the redirects one fetch follows.
const maxRedirects = 5

// newClient is the HTTP client of every fetch: redirects only to http(s),
// at most maxRedirects; the per-fetch timeout is the request's context.
func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t, CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s refused: only http and https are fetched", req.URL.Redacted())
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	return nil
}

// get fetches url within timeout and returns its body, at most max bytes.
func get(ctx context.Context, client *http.Client, url string, timeout time.Duration, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fail(ReasonHTTP, "%w", err)
	}
	req.Header.Set("Accept", "application/pkix-crl, application/x-pkcs7-crl, application/x-pem-file, */*")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fail(ReasonHTTP, "%w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fail(ReasonStatus, "GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > max {
		return nil, fail(ReasonTooLarge, "GET %s: %d bytes, over the limit of %d", url, resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fail(ReasonHTTP, "GET %s: reading the body: %w", url, err)
	}
	if int64(len(body)) > max {
		return nil, fail(ReasonTooLarge, "GET %s: over the limit of %d bytes", url, max)
	}
	return body, nil
}

// decode returns the DER of the one CRL in body, PEM or DER.
func decode(body []byte) ([]byte, error) {
	if !bytes.Contains(body, []byte("-----BEGIN ")) {
		if len(body) == 0 {
			return nil, fail(ReasonParse, "empty body")
		}
		return body, nil
	}
	blocks, err := pemder.Decode(body)
	if err != nil {
		return nil, fail(ReasonParse, "%w", err)
	}
	if len(blocks) != 1 || blocks[0].Type != crl.PEMType {
		return nil, fail(ReasonParse, "want exactly one %q PEM block, got %d blocks", crl.PEMType, len(blocks))
	}
	return blocks[0].DER, nil
}
