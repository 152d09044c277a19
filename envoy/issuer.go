package envoy

import (
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	mtlsauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/principals/mtls_authenticated/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// An identity matcher of type issuer is an RBAC sourced_metadata principal
// on the dynamic metadata IssuerMetadataFilter, key IssuerMetadataKey: the issuer
// DN of the client certificate, RFC 2253 as the subject is printed. No
// Envoy filter reads the issuer, and certplane emits none that writes
// this metadata, so Envoy never matches the principal: it admits fewer
// clients than written, never more. The control plane serves such a
// listener only when certplane proxies alone consume it
// (config.Loader.ProxyOnly, serve --data-plane proxy), and the proxy
// matches the principal against the peer certificate's issuer.
const (
	IssuerMetadataFilter = "certplane.issuer"
	IssuerMetadataKey    = "dn"
)

// issuerPrincipal admits a validated client certificate whose issuer DN
// matches sm.
func issuerPrincipal(sm *matcherv3.StringMatcher) (*rbacconfigv3.Principal, error) {
	validated, err := mtlsPrincipal(&mtlsauthv3.Config{AnyValidatedClientCertificate: true})
	if err != nil {
		return nil, err
	}
	// sourced_metadata with the default source DYNAMIC (Principal.metadata
	// is deprecated for it).
	issuer := &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_SourcedMetadata{SourcedMetadata: &rbacconfigv3.SourcedMetadata{
		MetadataMatcher: &matcherv3.MetadataMatcher{
			Filter: IssuerMetadataFilter,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: IssuerMetadataKey}}},
			Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sm}},
		},
		MetadataSource: rbacconfigv3.MetadataSource_DYNAMIC,
	}}}
	return andIDs(validated, issuer), nil
}
