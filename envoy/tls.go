package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// TLSTransportSocketName is the transport socket of every TLS context.
const TLSTransportSocketName = "envoy.transport_sockets.tls"

// ALPN protocol lists offered by a listener.
var (
	alpnH2     = []string{"h2", "http/1.1"}
	alpnHTTP11 = []string{"http/1.1"}
)

// DownstreamTLSContext is what listener l presents and demands on the filter
// chain of its certificate cert. The key pair and the trust bundle come by
// SDS; only per-listener validation settings are inline (see
// docs/resources.md for why they live in default_validation_context).
func DownstreamTLSContext(l *config.Listener, cert string, o Options) (*tlsv3.DownstreamTlsContext, error) {
	params, err := TLSParams(l.TLS)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	alpn := alpnHTTP11
	if l.HTTP2 {
		alpn = alpnH2
	}
	common := &tlsv3.CommonTlsContext{
		TlsParams:                      params,
		AlpnProtocols:                  append([]string(nil), alpn...),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef(ServerSecretName(cert), o)},
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	ca := l.ClientAuth
	switch ca.Mode {
	case config.ModeOff:
		if hasVerifySettings(ca) {
			return nil, fmt.Errorf("listener %q: client_auth mode off requests no certificate; subject_alt_names, certificate_hashes, spki_hashes, allow_expired and max_verify_depth need mode verify or optional", l.Name)
		}
	case config.ModePassthrough:
		// No trusted CA: Envoy refuses CRLs, SAN matchers and expiry
		// overrides without one, and passthrough verifies nothing anyway.
		if hasVerifySettings(ca) {
			return nil, fmt.Errorf("listener %q: client_auth mode passthrough verifies nothing; subject_alt_names, certificate_hashes, spki_hashes, allow_expired and max_verify_depth need mode verify or optional", l.Name)
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED,
			},
		}
	case config.ModeOptional, config.ModeVerify:
		if ca.TrustStore == "" {
			return nil, fmt.Errorf("listener %q: client_auth mode %s needs a trust_store", l.Name, ca.Mode)
		}
		def, err := listenerValidation(ca)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         def,
				ValidationContextSdsSecretConfig: sdsRef(TrustSecretName(ca.TrustStore), o),
			},
		}
		if ca.Mode == config.ModeVerify {
			ctx.RequireClientCertificate = wrapperspb.Bool(true)
		}
	default:
		return nil, fmt.Errorf("listener %q: unknown client_auth mode %s", l.Name, ca.Mode)
	}
	return ctx, nil
}

func hasVerifySettings(ca config.ClientAuth) bool {
	return len(ca.SubjectAltNames) > 0 || len(ca.CertificateHashes) > 0 ||
		len(ca.SPKIHashes) > 0 || ca.AllowExpired || ca.MaxVerifyDepth != nil
}

// listenerValidation holds the settings of one listener that Envoy merges
// (MergeFrom) with the trust/<store> Secret, which carries only trusted_ca
// and crl. A store shared by listeners with different rules stays one Secret.
func listenerValidation(ca config.ClientAuth) (*tlsv3.CertificateValidationContext, error) {
	v := &tlsv3.CertificateValidationContext{
		VerifyCertificateHash:   append([]string(nil), ca.CertificateHashes...),
		VerifyCertificateSpki:   append([]string(nil), ca.SPKIHashes...),
		AllowExpiredCertificate: ca.AllowExpired,
		OnlyVerifyLeafCertCrl:   ca.CRL == config.CRLLeafOnly,
		SuppressClientCaList:    !ca.AdvertiseCANames,
	}
	switch ca.CRL {
	case config.CRLFullChain, config.CRLLeafOnly:
	default:
		return nil, fmt.Errorf("unknown crl scope %s (want full_chain or leaf_only)", ca.CRL)
	}
	if ca.MaxVerifyDepth != nil {
		v.MaxVerifyDepth = wrapperspb.UInt32(*ca.MaxVerifyDepth)
	}
	for i, s := range ca.SubjectAltNames {
		m, err := SANMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("subject_alt_names[%d]: %w", i, err)
		}
		v.MatchTypedSubjectAltNames = append(v.MatchTypedSubjectAltNames, m)
	}
	return v, nil
}

var sanTypes = map[config.SANType]tlsv3.SubjectAltNameMatcher_SanType{
	config.SANDNS:   tlsv3.SubjectAltNameMatcher_DNS,
	config.SANURI:   tlsv3.SubjectAltNameMatcher_URI,
	config.SANEmail: tlsv3.SubjectAltNameMatcher_EMAIL,
	config.SANIP:    tlsv3.SubjectAltNameMatcher_IP_ADDRESS,
}

// SANMatcher is one entry of a subject-alt-name allow-list.
func SANMatcher(s config.SANMatcher) (*tlsv3.SubjectAltNameMatcher, error) {
	t, ok := sanTypes[s.Type]
	if !ok {
		return nil, fmt.Errorf("unknown SAN type %s (want dns, uri, email or ip)", s.Type)
	}
	m := &matcherv3.StringMatcher{}
	set := 0
	if s.Exact != "" {
		m.MatchPattern, set = &matcherv3.StringMatcher_Exact{Exact: s.Exact}, set+1
	}
	if s.Prefix != "" {
		m.MatchPattern, set = &matcherv3.StringMatcher_Prefix{Prefix: s.Prefix}, set+1
	}
	if s.Suffix != "" {
		m.MatchPattern, set = &matcherv3.StringMatcher_Suffix{Suffix: s.Suffix}, set+1
	}
	if s.Contains != "" {
		m.MatchPattern, set = &matcherv3.StringMatcher_Contains{Contains: s.Contains}, set+1
	}
	if s.Regex != "" {
		m.MatchPattern, set = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s.Regex}}, set+1
	}
	if set != 1 {
		return nil, fmt.Errorf("%s matcher needs exactly one of exact, prefix, suffix, contains, regex; has %d", s.Type, set)
	}
	return &tlsv3.SubjectAltNameMatcher{SanType: t, Matcher: m}, nil
}

// TLSParams maps a resolved TLS policy to Envoy's tls_params.
func TLSParams(p config.TLSPolicy) (*tlsv3.TlsParameters, error) {
	lo, err := tlsVersion(p.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("tls_policy %s min_version: %w", p.Name, err)
	}
	hi, err := tlsVersion(p.MaxVersion)
	if err != nil {
		return nil, fmt.Errorf("tls_policy %s max_version: %w", p.Name, err)
	}
	if lo > hi {
		return nil, fmt.Errorf("tls_policy %s: min_version %s is above max_version %s", p.Name, p.MinVersion, p.MaxVersion)
	}
	return &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: lo,
		TlsMaximumProtocolVersion: hi,
		CipherSuites:              append([]string(nil), p.CipherSuites...),
	}, nil
}

func tlsVersion(v config.TLSVersion) (tlsv3.TlsParameters_TlsProtocol, error) {
	switch v {
	case config.TLSv12:
		return tlsv3.TlsParameters_TLSv1_2, nil
	case config.TLSv13:
		return tlsv3.TlsParameters_TLSv1_3, nil
	}
	return 0, fmt.Errorf("unsupported TLS version %s (want TLSv1_2 or TLSv1_3)", v)
}

// UpstreamTLSContext is HTTPS, or mTLS when t.Certificate is set, from Envoy
// to a backend.
//
// Envoy checks an upstream chain against trusted_ca but never the server's
// name unless told: with an SNI, a DNS SAN matcher on it makes Envoy check
// the name as a Go or curl client does. Envoy's upstream default is also
// TLS 1.2 at most, so the versions are explicit.
func UpstreamTLSContext(t *config.UpstreamTLS, o Options) (*tlsv3.UpstreamTlsContext, error) {
	if t.TrustStore == "" {
		return nil, fmt.Errorf("upstream TLS needs a trust_store")
	}
	common := &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
	}
	trust := sdsRef(TrustSecretName(t.TrustStore), o)
	if t.SNI != "" {
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_DNS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.SNI}},
					}},
				},
				ValidationContextSdsSecretConfig: trust,
			},
		}
	} else {
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: trust,
		}
	}
	if t.Certificate != "" {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(ClientSecretName(t.Certificate), o)}
	}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: t.SNI}, nil
}

// transportSocket wraps a TLS context in the TLS transport socket.
func transportSocket(ctx proto.Message) (*corev3.TransportSocket, error) {
	a, err := typed(ctx)
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{
		Name:       TLSTransportSocketName,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}, nil
}
