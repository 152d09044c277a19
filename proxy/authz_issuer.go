package proxy

import (
	"fmt"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/certplane/certplane/proxy/mtls"
)

// The issuer of a client certificate, which no Envoy input reads, reaches
// the proxy as a sourced_metadata principal on the dynamic metadata
// "certplane.issuer", key "dn" (envoy/issuer.go). Envoy never matches it:
// no filter writes that metadata. The proxy matches it against the issuer
// DN as Subject prints a subject (RFC 2253 as BoringSSL), which is what
// dynamic metadata "certplane.issuer"/"dn" holds in the proxy. The control
// plane serves it only to certplane proxies (serve --data-plane proxy).
// Any other metadata principal is NACKed.
const (
	issuerMetadataFilter = "certplane.issuer"
	issuerMetadataKey    = "dn"
)

// issuerPrincipal matches a validated certificate whose issuer DN matches
// name. envoy/ joins it with mtls_authenticated{any_validated} already;
// requiring validation here too keeps a hand-written principal from
// admitting an unverified certificate by the issuer it claims.
type issuerPrincipal struct{ name *mtls.StringMatcher }

func (i issuerPrincipal) match(p *peer) bool {
	return p.leaf != nil && p.validated && i.name.Match(mtls.Issuer(p.leaf))
}

func buildIssuerPrincipal(s *rbacconfigv3.SourcedMetadata) (principal, error) {
	m := s.GetMetadataMatcher()
	switch {
	case s.GetMetadataSource() != rbacconfigv3.MetadataSource_DYNAMIC:
		return nil, fmt.Errorf("sourced_metadata.metadata_source %v is not implemented by certplane proxy (only DYNAMIC)", s.GetMetadataSource())
	case m.GetFilter() != issuerMetadataFilter:
		return nil, fmt.Errorf("sourced_metadata: filter %q is not implemented by certplane proxy (only %q)", m.GetFilter(), issuerMetadataFilter)
	case len(m.GetPath()) != 1 || m.GetPath()[0].GetKey() != issuerMetadataKey:
		return nil, fmt.Errorf("sourced_metadata: %s: path must be [%q]", issuerMetadataFilter, issuerMetadataKey)
	case m.GetInvert():
		return nil, fmt.Errorf("sourced_metadata: %s: invert is not implemented by certplane proxy", issuerMetadataFilter)
	case m.GetValue().GetStringMatch() == nil:
		return nil, fmt.Errorf("sourced_metadata: %s: value must be a string_match", issuerMetadataFilter)
	}
	sm, err := mtls.CompileStringMatcher(m.GetValue().GetStringMatch())
	if err != nil {
		return nil, fmt.Errorf("sourced_metadata: %s: %w", issuerMetadataFilter, err)
	}
	return issuerPrincipal{sm}, nil
}
