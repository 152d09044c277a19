package ocspcheck

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// Result is the verdict of one lookup.
type Result string

// The results; the last three are also the proxy's handshake failure
// reasons (connection log, certplane_proxy_ocsp_checks_total).
const (
	Good        Result = "good"
	Revoked     Result = "ocsp_revoked"
	Unknown     Result = "ocsp_unknown"
	Unavailable Result = "ocsp_unavailable"
)

// maxResponse bounds a responder's answer.
const maxResponse = 1 << 20

// maxCache bounds the cached answers (one per certificate).
const maxCache = 10000

// An answer without nextUpdate is not cached: RFC 6960 2.4 says newer
// information is then always available.

// skew is the clock skew allowed on a response's thisUpdate.
const skew = 5 * time.Minute

// oidNonce is id-pkix-ocsp-nonce (RFC 8954).
var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// Checker asks responders and caches their verified answers until
// nextUpdate. It is safe for concurrent use.
type Checker struct {
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	result Result
	until  time.Time
	err    error
}

// NewChecker returns a Checker; now nil means time.Now.
func NewChecker(now func() time.Time) *Checker {
	if now == nil {
		now = time.Now
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	return &Checker{
		client: &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now:    now, cache: map[[32]byte]cached{},
	}
}

// Check asks about leaf, issued by issuer, under p. err says why a result
// other than Good came. The lookup never outlasts p.Timeout.
func (c *Checker) Check(ctx context.Context, p *Policy, leaf, issuer *x509.Certificate) (Result, error) {
	key := cacheKey(leaf, issuer)
	now := c.now()
	c.mu.Lock()
	e, ok := c.cache[key]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.result, e.err
	}
	url := p.URL
	if url == "" {
		for _, u := range leaf.OCSPServer {
			if len(u) > 7 && (u[:7] == "http://" || (len(u) > 8 && u[:8] == "https://")) {
				url = u
				break
			}
		}
	}
	if url == "" {
		return Unavailable, errors.New("the certificate names no http(s) OCSP responder (Authority Information Access) and client_auth.ocsp has no url")
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	resp, err := c.ask(ctx, url, leaf, issuer, now)
	if err != nil {
		return Unavailable, fmt.Errorf("OCSP responder %s: %w", url, err)
	}
	var res Result
	var why error
	switch resp.Status {
	case ocsp.Good:
		res = Good
	case ocsp.Revoked:
		res, why = Revoked, fmt.Errorf("OCSP responder %s: revoked at %s (reason %d)", url, resp.RevokedAt.UTC().Format(time.RFC3339), resp.RevocationReason)
	default:
		res, why = Unknown, fmt.Errorf("OCSP responder %s: status unknown: the responder does not know this certificate", url)
	}
	if !resp.NextUpdate.IsZero() {
		c.put(key, cached{res, resp.NextUpdate, why}, now)
	}
	return res, why
}

func (c *Checker) put(key [32]byte, e cached, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= maxCache {
		for k, old := range c.cache {
			if !now.Before(old.until) {
				delete(c.cache, k)
			}
		}
		for k := range c.cache {
			if len(c.cache) < maxCache {
				break
			}
			delete(c.cache, k) // map order: an arbitrary victim
		}
	}
	c.cache[key] = e
}

func cacheKey(leaf, issuer *x509.Certificate) [32]byte {
	h := sha256.New()
	h.Write(issuer.RawSubjectPublicKeyInfo)
	h.Write([]byte{0})
	h.Write(leaf.SerialNumber.Bytes())
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// ask posts a request with a nonce and verifies the answer: signed by the
// issuer, or by a responder certificate the issuer issued for
// id-kp-OCSPSigning and valid now; for leaf's serial; current; and
// echoing the nonce when the responder echoes one.
func (c *Checker) ask(ctx context.Context, url string, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	reqDER, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	if reqDER, err = withNonce(reqDER, nonce); err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(reqDER))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	hr, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", hr.Status)
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("answer over %d bytes", maxResponse)
	}
	// Parsed without the issuer: x/crypto would check an embedded
	// certificate against it even when it is the issuer itself, and would
	// not ask a delegated responder for id-kp-OCSPSigning.
	resp, err := ocsp.ParseResponseForCert(body, leaf, nil)
	if err != nil {
		return nil, fmt.Errorf("answer refused: %w", err)
	}
	if err := verifySigner(resp, issuer, now); err != nil {
		return nil, err
	}
	if resp.ThisUpdate.After(now.Add(skew)) {
		return nil, fmt.Errorf("answer not yet valid (thisUpdate %s)", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !resp.NextUpdate.IsZero() && !now.Before(resp.NextUpdate) {
		return nil, fmt.Errorf("stale answer (nextUpdate %s)", resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	got, err := responseNonce(body)
	if err != nil {
		return nil, fmt.Errorf("answer refused: %w", err)
	}
	if got != nil && !bytes.Equal(got, nonce) {
		return nil, errors.New("answer refused: its nonce is not the one sent (a replayed answer)")
	}
	return resp, nil
}

// verifySigner checks who signed resp.
func verifySigner(resp *ocsp.Response, issuer *x509.Certificate, now time.Time) error {
	r := resp.Certificate
	if r == nil || bytes.Equal(r.Raw, issuer.Raw) {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("answer not signed by the issuing CA %s: %w", issuer.Subject, err)
		}
		return nil
	}
	if err := r.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("the responder certificate %s is not issued by the CA %s: %w", r.Subject, issuer.Subject, err)
	}
	ok := false
	for _, u := range r.ExtKeyUsage {
		ok = ok || u == x509.ExtKeyUsageOCSPSigning
	}
	if !ok {
		return fmt.Errorf("the responder certificate %s lacks id-kp-OCSPSigning: it may not answer for its CA", r.Subject)
	}
	if now.Before(r.NotBefore) || now.After(r.NotAfter) {
		return fmt.Errorf("the responder certificate %s is not valid now", r.Subject)
	}
	if err := resp.CheckSignatureFrom(r); err != nil {
		return fmt.Errorf("answer not signed by its responder certificate: %w", err)
	}
	return nil
}

// withNonce adds requestExtensions { nonce } to a DER OCSPRequest that
// has none (x/crypto/ocsp builds no extensions).
func withNonce(der, nonce []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var outer, tbs cryptobyte.String
	if !in.ReadASN1(&outer, cbasn1.SEQUENCE) || !in.Empty() || !outer.ReadASN1(&tbs, cbasn1.SEQUENCE) || !outer.Empty() {
		return nil, errors.New("unexpected OCSPRequest encoding")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(tbs)
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidNonce)
						b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(nonce)
						})
					})
				})
			})
		})
	})
	return b.Bytes()
}

// responseNonce returns the nonce of a DER OCSPResponse's
// responseExtensions, nil when it has none.
func responseNonce(der []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var resp, bytesField, rb, basicDER cryptobyte.String
	var status int
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.ReadASN1Enum(&status) ||
		!resp.ReadASN1(&bytesField, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!bytesField.ReadASN1(&rb, cbasn1.SEQUENCE) || !rb.ReadASN1ObjectIdentifier(&oid) ||
		!rb.ReadASN1(&basicDER, cbasn1.OCTET_STRING) {
		return nil, errors.New("malformed OCSPResponse")
	}
	var basic, tbs cryptobyte.String
	if !basicDER.ReadASN1(&basic, cbasn1.SEQUENCE) || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed BasicOCSPResponse")
	}
	var skip cryptobyte.String
	var tag cbasn1.Tag
	// version [0] OPTIONAL, responderID, producedAt, responses.
	if tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) && !tbs.ReadAnyASN1(&skip, &tag) {
		return nil, errors.New("malformed ResponseData")
	}
	for range 3 {
		if !tbs.ReadAnyASN1(&skip, &tag) {
			return nil, errors.New("malformed ResponseData")
		}
	}
	var exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, errors.New("malformed responseExtensions")
	}
	if !present {
		return nil, nil
	}
	var list cryptobyte.String
	if !exts.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed responseExtensions")
	}
	for !list.Empty() {
		var ext, val cryptobyte.String
		var eoid asn1.ObjectIdentifier
		if !list.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&eoid) {
			return nil, errors.New("malformed extension")
		}
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) {
			var crit bool
			if !ext.ReadASN1Boolean(&crit) {
				return nil, errors.New("malformed extension")
			}
		}
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			return nil, errors.New("malformed extension")
		}
		if !eoid.Equal(oidNonce) {
			continue
		}
		// The value is an OCTET STRING holding the nonce (RFC 8954);
		// some responders put the nonce bare.
		var inner cryptobyte.String
		if v := val; v.ReadASN1(&inner, cbasn1.OCTET_STRING) && v.Empty() {
			return []byte(inner), nil
		}
		return []byte(val), nil
	}
	return nil, nil
}
