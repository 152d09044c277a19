package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Secret names are derived from directory names only, never from content:
// a rotated certificate or CRL then changes a Secret's content and nothing
// else, so Envoy swaps it without draining the listener.

// ServerSecretName is the Secret holding certs/server/<name>.
func ServerSecretName(name string) string { return "server/" + name }

// ClientSecretName is the Secret holding certs/client/<name>.
func ClientSecretName(name string) string { return "client/" + name }

// TrustSecretName is the validation-context Secret of certs/trust/<store>.
func TrustSecretName(store string) string { return "trust/" + store }

// FilterChainName names the filter chain of listener that presents cert.
func FilterChainName(listener, cert string) string { return listener + "/" + cert }

// DefaultFilterChainName names a listener's default_filter_chain. It differs
// from chain 0's name so no two chains of one listener share a name.
func DefaultFilterChainName(listener, cert string) string {
	return listener + "/" + cert + "/default"
}

// Options chooses how built resources refer to one another.
type Options struct {
	// Static makes every reference resolvable inside one static bootstrap:
	// routes inline in the HTTP connection manager instead of RDS, secrets
	// named without an sds_config (Envoy then takes them from
	// static_resources.secrets), and EDS clusters turned STATIC with their
	// endpoints inline. The zero value is the ADS form certplane serves.
	Static bool
	// Instance tells this control plane's loop tokens (LoopToken) from
	// another deployment's listeners of the same name.
	Instance string
}

// ads is the config source of every dynamic reference: the one ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// sdsRef refers to the Secret name, over ADS or, in static form, from
// static_resources.secrets.
func sdsRef(name string, o Options) *tlsv3.SdsSecretConfig {
	ref := &tlsv3.SdsSecretConfig{Name: name}
	if !o.Static {
		ref.SdsConfig = ads()
	}
	return ref
}

// typed packs m into an Any with deterministic bytes. Any holds serialized
// bytes, and map fields (the JSON log format) serialize in random order by
// default: that would make equal resources differ and defeat content-hash
// versions, so every Any is built here.
func typed(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, fmt.Errorf("pack %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}
