package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/proxy/ocspcheck"
)

const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	routerFilterName   = "envoy.filters.http.router"
	tlsInspectorName   = "envoy.filters.listener.tls_inspector"
	stdoutAccessLogger = "envoy.access_loggers.stdout"
)

// buildListener resolves a Listener against the state's secrets, reusing
// cached verifiers. A *missingError means the listener warms.
func (b *builder) buildListener(l *listenerv3.Listener) (*listenerState, error) {
	addr, err := socketAddress(l.GetAddress())
	if err != nil {
		return nil, err
	}
	for i, f := range l.GetListenerFilters() {
		if f.GetName() != tlsInspectorName {
			return nil, fmt.Errorf("listener_filters[%d]: %q is not implemented by certplane proxy", i, f.GetName())
		}
	}
	for i, a := range l.GetAccessLog() {
		if a.GetName() != stdoutAccessLogger {
			return nil, fmt.Errorf("access_log[%d]: %q is not implemented by certplane proxy", i, a.GetName())
		}
	}
	if len(l.GetFilterChains()) == 0 {
		return nil, errors.New("filter_chains is empty")
	}
	ls := &listenerState{
		name: l.GetName(), address: addr, hash: protoHash(l),
		exact: map[string]*chainState{}, wildcards: map[string]*chainState{},
	}
	for i, fc := range l.GetFilterChains() {
		c, err := b.buildChain(fc)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
		}
		ls.chains = append(ls.chains, c)
		if len(c.serverNames) == 0 {
			if ls.catchAll != nil {
				return nil, fmt.Errorf("filter_chains[%d]: a second chain without server_names (Envoy rejects duplicate matchers)", i)
			}
			ls.catchAll = c
		}
		for _, n := range c.serverNames {
			m, key := ls.exact, n
			if strings.HasPrefix(n, "*.") {
				m, key = ls.wildcards, n[1:]
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("filter_chains[%d]: server name %q is matched by another chain too", i, n)
			}
			m[key] = c
		}
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		c, err := b.buildChain(d)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		ls.def = c
	}
	ls.server = ls.chains[0].hcm.server
	if err := sameServerSettings(ls); err != nil {
		return nil, err
	}
	ls.copyBuffer = bufferLimitChunk(l.GetPerConnectionBufferLimitBytes())
	ls.bufferLimit = envoyBufferLimit
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		ls.bufferLimit = int(v.GetValue())
	}
	return ls, nil
}

func (b *builder) buildChain(fc *listenerv3.FilterChain) (*chainState, error) {
	c := &chainState{name: fc.GetName()}
	for _, n := range fc.GetFilterChainMatch().GetServerNames() {
		c.serverNames = append(c.serverNames, strings.ToLower(n))
	}
	hcm, err := checkFilters(fc.GetFilters())
	if err != nil {
		return nil, err
	}
	c.hcm = hcm
	if c.ocsp, err = ocspcheck.ParseMetadata(fc.GetMetadata()); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	ts := fc.GetTransportSocket()
	if ts == nil {
		return nil, errors.New("transport_socket is missing: plaintext listeners are not implemented by certplane proxy")
	}
	if ts.GetName() != tlsTransportSocket {
		return nil, fmt.Errorf("transport_socket.name %q is not implemented by certplane proxy", ts.GetName())
	}
	var dtc tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
		return nil, fmt.Errorf("transport_socket.typed_config is not a DownstreamTlsContext: %w", err)
	}
	if err := b.downstreamTLS(c, &dtc); err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	return c, nil
}

func (b *builder) downstreamTLS(c *chainState, dtc *tlsv3.DownstreamTlsContext) error {
	ctc := dtc.GetCommonTlsContext()
	cfg := &tls.Config{}
	if err := tlsParams(ctc.GetTlsParams(), cfg); err != nil {
		return fmt.Errorf("common_tls_context.%w", err)
	}
	protos, err := alpn(ctc.GetAlpnProtocols())
	if err != nil {
		return fmt.Errorf("common_tls_context.%w", err)
	}
	cfg.NextProtos = protos
	certs := ctc.GetTlsCertificateSdsSecretConfigs()
	if len(certs) == 0 {
		return errors.New("common_tls_context.tls_certificate_sds_secret_configs is empty")
	}
	// A missing secret makes the chain warm, but everything else is still
	// checked, so that validation catches a bad validation context early.
	var missing error
	for i, sc := range certs {
		if err := checkSDS(sc); err != nil {
			return fmt.Errorf("common_tls_context.tls_certificate_sds_secret_configs[%d]: %w", i, err)
		}
		sec := b.secrets[sc.GetName()]
		if sec == nil {
			missing = &missingError{"secret " + sc.GetName()}
			continue
		}
		if sec.keyPair == nil {
			return fmt.Errorf("secret %q holds no tls_certificate", sc.GetName())
		}
		cfg.Certificates = append(cfg.Certificates, *sec.keyPair)
		if c.leaf == nil {
			c.leaf, c.certName = sec.keyPair.Leaf, sc.GetName()
		}
	}
	vc, crls, err := b.validationContext(ctc)
	if err != nil {
		return err
	}
	if vc != nil {
		v, err := b.verifier(vc, crls, dtc.GetRequireClientCertificate().GetValue())
		if err != nil {
			return fmt.Errorf("common_tls_context validation context: %w", err)
		}
		c.verifier = v
		cfg.ClientAuth = v.ClientAuth()
		cfg.ClientCAs = v.ClientCAs()
	} else if dtc.GetRequireClientCertificate().GetValue() {
		return errors.New("require_client_certificate is set without a validation context (Envoy rejects this)")
	}
	if c.ocsp != nil && c.verifier == nil {
		return errors.New("metadata \"certplane.ocsp\" is set on a filter chain that verifies no client certificate")
	}
	if missing != nil {
		return missing
	}
	c.tls = cfg
	return nil
}

// validationContext returns the effective validation context, merged as
// Envoy merges default_validation_context with the SDS one; nil when client
// certificates are off. crls is the SDS Secret's parsed crl, if any, for the
// verifier to reuse rather than parse again.
func (b *builder) validationContext(ctc *tlsv3.CommonTlsContext) (vc *tlsv3.CertificateValidationContext, crls *mtls.CRLSet, err error) {
	var def *tlsv3.CertificateValidationContext
	var sds *tlsv3.SdsSecretConfig
	switch {
	case ctc.GetValidationContext() != nil:
		return ctc.GetValidationContext(), nil, nil
	case ctc.GetCombinedValidationContext() != nil:
		cvc := ctc.GetCombinedValidationContext()
		def, sds = cvc.GetDefaultValidationContext(), cvc.GetValidationContextSdsSecretConfig()
		if sds == nil {
			return nil, nil, errors.New("common_tls_context.combined_validation_context.validation_context_sds_secret_config is missing")
		}
	case ctc.GetValidationContextSdsSecretConfig() != nil:
		sds = ctc.GetValidationContextSdsSecretConfig()
	default:
		return nil, nil, nil
	}
	if err := checkSDS(sds); err != nil {
		return nil, nil, fmt.Errorf("validation_context_sds_secret_config: %w", err)
	}
	sec := b.secrets[sds.GetName()]
	if sec == nil {
		return nil, nil, &missingError{"secret " + sds.GetName()}
	}
	if sec.vc == nil {
		return nil, nil, fmt.Errorf("secret %q holds no validation_context", sds.GetName())
	}
	return mtls.MergeValidationContext(def, sec.vc), sec.crls, nil
}

// verifier returns a verifier for vc, reusing the previous state's when the
// inputs are identical so live connections are rechecked only on change.
func (b *builder) verifier(vc *tlsv3.CertificateValidationContext, crls *mtls.CRLSet, require bool) (*mtls.Verifier, error) {
	// vc no longer carries the Secret's crl (released once indexed): the
	// CRLs' digest keys the verifier too, so a new CRL gets a new one.
	key := fmt.Sprintf("%t|%s|%x", require, protoHash(vc), crls.Digest())
	if v := b.next.verifiers[key]; v != nil {
		return v, nil
	}
	if v := b.prev.verifiers[key]; v != nil {
		b.next.verifiers[key] = v
		return v, nil
	}
	opts := b.mtlsOptions
	opts.CRLs = crls // vc's crl as parsed, when it had one
	v, err := mtls.NewVerifier(vc, require, opts)
	if err != nil {
		return nil, err
	}
	b.next.verifiers[key] = v
	return v, nil
}

// checkFilters checks the single HTTP connection manager of a chain.
func checkFilters(filters []*listenerv3.Filter) (*hcmSettings, error) {
	if len(filters) != 1 || filters[0].GetName() != hcmFilterName {
		return nil, fmt.Errorf("filters: exactly one %s is implemented by certplane proxy", hcmFilterName)
	}
	var h hcmv3.HttpConnectionManager
	if err := filters[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
		return nil, fmt.Errorf("filters[0].typed_config is not an HttpConnectionManager: %w", err)
	}
	s, err := checkHCM(&h)
	if err != nil {
		return nil, fmt.Errorf("filters[0] http_connection_manager: %w", err)
	}
	return s, nil
}

func checkHCM(h *hcmv3.HttpConnectionManager) (*hcmSettings, error) {
	rds := h.GetRds()
	if rds == nil || rds.GetRouteConfigName() == "" {
		return nil, errors.New("rds.route_config_name is missing")
	}
	if rds.GetConfigSource().GetAds() == nil {
		return nil, errors.New("rds.config_source must be ADS")
	}
	filters, err := checkHTTPFilters(h.GetHttpFilters())
	if err != nil {
		return nil, err
	}
	if !h.GetUseRemoteAddress().GetValue() {
		return nil, errors.New("use_remote_address false is not implemented by certplane proxy: it always appends the peer address to X-Forwarded-For")
	}
	if h.GetXffNumTrustedHops() != 0 {
		return nil, errors.New("xff_num_trusted_hops other than 0 is not implemented by certplane proxy")
	}
	for i, a := range h.GetAccessLog() {
		if a.GetName() != stdoutAccessLogger {
			return nil, fmt.Errorf("access_log[%d]: %q is not implemented by certplane proxy", i, a.GetName())
		}
	}
	s := &hcmSettings{
		routeName:         rds.GetRouteConfigName(),
		statPrefix:        h.GetStatPrefix(),
		xfcc:              h.GetForwardClientCertDetails(),
		streamIdleTimeout: 5 * time.Minute, // Envoy's defaults
		server:            serverSettings{idleTimeout: time.Hour, maxHeaderBytes: 60 << 10},
		underscores:       h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(),
		path:              pathSettings(h),
		mutations:         filters.mutations,
		rbacSet:           filters.rbacSet,
		rbac:              filters.rbac,
	}
	// Every set_current_client_cert_details combination is implemented;
	// it is read only where Envoy reads it (SANITIZE_SET, APPEND_FORWARD).
	d := h.GetSetCurrentClientCertDetails()
	s.xfccFields = mtls.XFCCFields{Cert: d.GetCert(), Chain: d.GetChain(), Subject: d.GetSubject().GetValue(), URI: d.GetUri(), DNS: d.GetDns()}
	if t := h.GetRequestHeadersTimeout(); t != nil {
		s.server.readHeaderTimeout = t.AsDuration()
	}
	if t := h.GetCommonHttpProtocolOptions().GetIdleTimeout(); t != nil {
		s.server.idleTimeout = t.AsDuration()
	}
	if t := h.GetStreamIdleTimeout(); t != nil {
		s.streamIdleTimeout = t.AsDuration()
	}
	if kb := h.GetMaxRequestHeadersKb(); kb != nil {
		if kb.GetValue() == 0 || kb.GetValue() > 8192 {
			return nil, fmt.Errorf("max_request_headers_kb %d is out of range 1..8192", kb.GetValue())
		}
		s.server.maxHeaderBytes = int(kb.GetValue()) << 10
	}
	if err := http2Settings(h.GetHttp2ProtocolOptions(), &s.server); err != nil {
		return nil, fmt.Errorf("http2_protocol_options: %w", err)
	}
	return s, nil
}

// protoHash is a deterministic digest of a message, to compare inputs.
func protoHash(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "unmarshalable:" + err.Error()
	}
	return digest(b)
}
