package envoy

import (
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// XFCCDetails maps a listener's xfcc policy to the connection manager's
// forward_client_cert_details and set_current_client_cert_details. Hash is
// not a field there: Envoy always writes it (config requires it listed).
// FORWARD_ONLY, like every mode but ALWAYS_FORWARD_ONLY, still removes the
// header of a client that presented no certificate.
func XFCCDetails(x config.XFCC) (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails, error) {
	var mode hcmv3.HttpConnectionManager_ForwardClientCertDetails
	switch x.Mode {
	case config.XFCCSanitizeSet:
		mode = hcmv3.HttpConnectionManager_SANITIZE_SET
	case config.XFCCAppendForward:
		mode = hcmv3.HttpConnectionManager_APPEND_FORWARD
	case config.XFCCForwardOnly:
		return hcmv3.HttpConnectionManager_FORWARD_ONLY, nil, nil
	default:
		return 0, nil, fmt.Errorf("unknown xfcc mode %s", x.Mode)
	}
	if !x.Has(config.XFCCHash) {
		return 0, nil, fmt.Errorf("xfcc mode %s without hash: Envoy always writes Hash", x.Mode)
	}
	d := &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
		Cert:  x.Has(config.XFCCCert),
		Chain: x.Has(config.XFCCChain),
		Uri:   x.Has(config.XFCCURI),
		Dns:   x.Has(config.XFCCDNS),
	}
	if x.Has(config.XFCCSubject) {
		d.Subject = wrapperspb.Bool(true)
	}
	return mode, d, nil
}
