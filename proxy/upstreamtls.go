package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/proxy/mtls"
)

const tlsTransportSocket = "envoy.transport_sockets.tls"

// upstreamSpec is an UpstreamTlsContext checked on its own.
type upstreamSpec struct {
	sni       string
	trustName string // validation_context_sds_secret_config; "" = no verification (Envoy's default)
	certName  string // tls_certificate_sds_secret_configs[0]; "" = no client certificate
	params    *tlsv3.TlsParameters
	alpn      []string
	// sanDNS are DNS names the upstream certificate must carry (one of).
	sanDNS []string
}

func checkUpstreamTLS(ts *corev3.TransportSocket) (*upstreamSpec, error) {
	if ts.GetName() != tlsTransportSocket {
		return nil, fmt.Errorf("name %q is not implemented by certplane proxy (want %s)", ts.GetName(), tlsTransportSocket)
	}
	var u tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&u); err != nil {
		return nil, fmt.Errorf("typed_config is not an UpstreamTlsContext: %w", err)
	}
	ctc := u.GetCommonTlsContext()
	s := &upstreamSpec{sni: u.GetSni(), params: ctc.GetTlsParams(), alpn: ctc.GetAlpnProtocols()}
	if ctc.GetValidationContext() != nil {
		return nil, errors.New("common_tls_context.validation_context is not implemented upstream by certplane proxy")
	}
	v := ctc.GetValidationContextSdsSecretConfig()
	if cvc := ctc.GetCombinedValidationContext(); cvc != nil {
		v = cvc.GetValidationContextSdsSecretConfig()
		if v == nil {
			return nil, errors.New("common_tls_context.combined_validation_context.validation_context_sds_secret_config is missing")
		}
		def := cvc.GetDefaultValidationContext()
		if err := checkFields("default_validation_context", def); err != nil {
			return nil, err
		}
		for i, m := range def.GetMatchTypedSubjectAltNames() {
			exact, ok := m.GetMatcher().GetMatchPattern().(*matcherv3.StringMatcher_Exact)
			if m.GetSanType() != tlsv3.SubjectAltNameMatcher_DNS || !ok || m.GetMatcher().GetIgnoreCase() {
				return nil, fmt.Errorf("common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[%d]: only DNS exact matchers are implemented upstream by certplane proxy", i)
			}
			s.sanDNS = append(s.sanDNS, exact.Exact)
		}
		def2 := proto.Clone(def).(*tlsv3.CertificateValidationContext)
		def2.MatchTypedSubjectAltNames = nil
		if !proto.Equal(def2, &tlsv3.CertificateValidationContext{}) {
			return nil, errors.New("common_tls_context.combined_validation_context.default_validation_context: only match_typed_subject_alt_names is implemented upstream by certplane proxy")
		}
	}
	if v != nil {
		if err := checkSDS(v); err != nil {
			return nil, fmt.Errorf("common_tls_context.validation_context_sds_secret_config: %w", err)
		}
		s.trustName = v.GetName()
	}
	switch certs := ctc.GetTlsCertificateSdsSecretConfigs(); len(certs) {
	case 0:
	case 1:
		if err := checkSDS(certs[0]); err != nil {
			return nil, fmt.Errorf("common_tls_context.tls_certificate_sds_secret_configs[0]: %w", err)
		}
		s.certName = certs[0].GetName()
	default:
		return nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: more than one client certificate is not implemented by certplane proxy")
	}
	for _, p := range s.alpn {
		if p != "http/1.1" {
			return nil, fmt.Errorf("common_tls_context.alpn_protocols: %q is not implemented upstream by certplane proxy", p)
		}
	}
	return s, nil
}

func checkSDS(c *tlsv3.SdsSecretConfig) error {
	if c.GetName() == "" {
		return errors.New("name is empty")
	}
	if c.GetSdsConfig().GetAds() == nil {
		return errors.New("sds_config must be ADS")
	}
	return nil
}

// upstreamTLS is an UpstreamTlsContext resolved against its secrets.
type upstreamTLS struct {
	config *tls.Config
}

// buildUpstreamTLS resolves the spec against the secrets. A missing secret
// is reported by name so the cluster warms until it arrives.
func buildUpstreamTLS(s *upstreamSpec, secrets map[string]*secret) (*upstreamTLS, error) {
	cfg := &tls.Config{ServerName: s.sni}
	if err := tlsParams(s.params, cfg); err != nil {
		return nil, err
	}
	if s.params.GetCipherSuites() == nil {
		cfg.CipherSuites = nil // Go's client defaults, close to Envoy's upstream list
	}
	if s.certName != "" {
		sec := secrets[s.certName]
		if sec == nil {
			return nil, &missingError{"secret " + s.certName}
		}
		if sec.keyPair == nil {
			return nil, fmt.Errorf("secret %q holds no tls_certificate", s.certName)
		}
		kp := sec.keyPair
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp, nil }
	}
	// Envoy verifies the upstream only against a validation context, and never
	// checks the host name unless SAN matchers say so: mirror both.
	cfg.InsecureSkipVerify = true //nolint:gosec // verification happens in VerifyConnection below
	if s.trustName != "" {
		sec := secrets[s.trustName]
		if sec == nil {
			return nil, &missingError{"secret " + s.trustName}
		}
		if sec.vc == nil {
			return nil, fmt.Errorf("secret %q holds no validation_context", s.trustName)
		}
		if len(sec.roots) == 0 {
			return nil, fmt.Errorf("secret %q: validation_context.trusted_ca is empty", s.trustName)
		}
		cfg.VerifyConnection = upstreamVerifier(sec, s.sanDNS)
	}
	return &upstreamTLS{config: cfg}, nil
}

// upstreamVerifier checks the upstream's chain against the trust bundle and,
// when the bundle carries CRLs, every CA's CRL (Envoy's full-chain default;
// only_verify_leaf_cert_crl limits it to the leaf).
func upstreamVerifier(sec *secret, sanDNS []string) func(tls.ConnectionState) error {
	roots := x509.NewCertPool()
	for _, c := range sec.roots {
		roots.AddCert(c)
	}
	leafOnly := sec.vc.GetOnlyVerifyLeafCertCrl()
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("upstream presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("upstream certificate: %w", err)
		}
		if len(sanDNS) > 0 && !matchesAnyDNS(cs.PeerCertificates[0], sanDNS) {
			return fmt.Errorf("upstream certificate %q matches none of the DNS names %q", cs.PeerCertificates[0].Subject, sanDNS)
		}
		if sec.crls.Len() == 0 {
			return nil
		}
		return checkChainCRLs(chains[0], sec.crls, leafOnly, time.Now())
	}
}

// checkChainCRLs checks every certificate but the anchor against its
// issuer's CRL.
func checkChainCRLs(chain []*x509.Certificate, crls *mtls.CRLSet, leafOnly bool, now time.Time) error {
	n := len(chain) - 1
	if leafOnly {
		n = 1
	}
	for i := 0; i < n && i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		found, nextUpdate, revoked := crls.Lookup(issuer, cert.SerialNumber)
		if !found {
			return fmt.Errorf("upstream certificate %q: no CRL for issuer %q", cert.Subject, issuer.Subject)
		}
		if !nextUpdate.IsZero() && now.After(nextUpdate) {
			return fmt.Errorf("upstream certificate %q: CRL of %q expired at %s", cert.Subject, issuer.Subject, nextUpdate.Format(time.RFC3339))
		}
		if revoked {
			return fmt.Errorf("upstream certificate %q (serial %s) is revoked", cert.Subject, cert.SerialNumber)
		}
	}
	return nil
}

// missingError marks a resource that is referenced but not yet received:
// the referencing resource warms instead of failing.
type missingError struct{ what string }

func (e *missingError) Error() string { return e.what + " is not yet received" }

// matchesAnyDNS applies Envoy's DNS SAN matching (wildcards in the
// certificate match one label) through Go's host name check.
func matchesAnyDNS(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if len(leaf.DNSNames) > 0 && leaf.VerifyHostname(n) == nil {
			return true
		}
	}
	return false
}
