package mtls

import (
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// MergeValidationContext applies Envoy's CombinedCertificateValidationContext
// rule: a copy of the default context, then MergeFrom(dynamic). Singular
// fields set in dyn overwrite, repeated fields concatenate (default first),
// and bools OR (proto3 false never overwrites). The inputs are not modified.
func MergeValidationContext(def, dyn *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	out := &tlsv3.CertificateValidationContext{}
	if def != nil {
		out = proto.Clone(def).(*tlsv3.CertificateValidationContext)
	}
	if dyn != nil {
		proto.Merge(out, dyn)
	}
	return out
}
