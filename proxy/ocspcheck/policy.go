// Package ocspcheck asks OCSP responders about client certificates for the
// bundled proxy (client_auth.ocsp). Envoy checks no client OCSP; the
// control plane tells the proxy a listener's OCSP policy in its filter
// chains' metadata (filter_metadata "certplane.ocsp"), which Envoy ignores.
package ocspcheck

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// MetadataKey is the filter_metadata key of a filter chain's OCSP policy.
const MetadataKey = "certplane.ocsp"

// The modes of a policy.
const (
	BestEffort = "best_effort" // revoked refuses; unknown or no answer admits, logged
	Require    = "require"     // only a good, verified answer admits
)

// Policy is one filter chain's OCSP policy.
type Policy struct {
	Mode    string
	URL     string // asked instead of the certificate's AIA responder
	Timeout time.Duration
}

// maxTimeout bounds what a lookup may add to one handshake.
const maxTimeout = 30 * time.Second

// ParseMetadata reads the OCSP policy of a filter chain's metadata: nil
// when it has none. Anything else in the metadata, or a malformed policy,
// is an error (the resource is NACKed: nothing set is ignored in silence).
func ParseMetadata(md *corev3.Metadata) (*Policy, error) {
	if md == nil {
		return nil, nil
	}
	var p *Policy
	for k, s := range md.GetFilterMetadata() {
		if k != MetadataKey {
			return nil, fmt.Errorf("filter_metadata %q is not implemented by certplane proxy (only %q)", k, MetadataKey)
		}
		var err error
		if p, err = parsePolicy(s); err != nil {
			return nil, fmt.Errorf("filter_metadata %q: %w", k, err)
		}
	}
	if len(md.GetTypedFilterMetadata()) > 0 {
		return nil, errors.New("typed_filter_metadata is not implemented by certplane proxy")
	}
	return p, nil
}

func parsePolicy(s *structpb.Struct) (*Policy, error) {
	p := &Policy{}
	for k, v := range s.GetFields() {
		switch k {
		case "mode":
			p.Mode = v.GetStringValue()
		case "url":
			p.URL = v.GetStringValue()
			u, err := url.Parse(p.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("url %q: want an http(s) URL", p.URL)
			}
		case "timeout_ms":
			ms := v.GetNumberValue()
			if ms <= 0 || time.Duration(ms)*time.Millisecond > maxTimeout {
				return nil, fmt.Errorf("timeout_ms %v: want 1 to %d", ms, maxTimeout.Milliseconds())
			}
			p.Timeout = time.Duration(ms) * time.Millisecond
		default:
			return nil, fmt.Errorf("field %q is not implemented by certplane proxy", k)
		}
	}
	if !slices.Contains([]string{BestEffort, Require}, p.Mode) {
		return nil, fmt.Errorf("mode %q: want %s or %s", p.Mode, BestEffort, Require)
	}
	if p.Timeout == 0 {
		return nil, errors.New("timeout_ms is required")
	}
	return p, nil
}
