package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/certplane/certplane/config"
)

// OCSPMetadataKey is the filter_metadata key that carries a listener's
// client_auth.ocsp to the bundled proxy. Envoy checks no client OCSP and
// ignores filter metadata it has no filter for; the control plane refuses
// ocsp mode require unless only certplane proxies consume it
// (config.Loader.ProxyOnly), so Envoy never serves it as off.
const OCSPMetadataKey = "certplane.ocsp"

// OCSPMetadata is the filter chain metadata of l's OCSP policy, nil when
// OCSP is off: {mode, url (optional), timeout_ms}.
func OCSPMetadata(l *config.Listener) *corev3.Metadata {
	o := l.ClientAuth.OCSP
	if !o.On() {
		return nil
	}
	f := map[string]*structpb.Value{
		"mode":       structpb.NewStringValue(string(o.Mode)),
		"timeout_ms": structpb.NewNumberValue(float64(o.Timeout.Milliseconds())),
	}
	if o.URL != "" {
		f["url"] = structpb.NewStringValue(o.URL)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{OCSPMetadataKey: {Fields: f}}}
}
