package envoy

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// Filter names.
const (
	HTTPConnectionManagerName = "envoy.filters.network.http_connection_manager"
	RouterName                = "envoy.filters.http.router"
	TLSInspectorName          = "envoy.filters.listener.tls_inspector"
)

// Connection limits of every listener, as a load balancer would set them.
const (
	IdleTimeout           = 300 * time.Second
	RequestHeadersTimeout = 10 * time.Second
	StreamIdleTimeout     = 300 * time.Second
	MaxRequestHeadersKB   = 60
)

// HTTPConnectionManager terminates HTTP for listener l. Client certificate
// details reach the backends in XFCC when l selects "xfcc"; an inbound XFCC
// header is removed in every case (SANITIZE), so clients cannot forge one.
func HTTPConnectionManager(l *config.Listener, o Options) (*hcmv3.HttpConnectionManager, error) {
	router, err := typed(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	log, err := HTTPAccessLog(l.Name)
	if err != nil {
		return nil, err
	}
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       RouterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		UseRemoteAddress:         wrapperspb.Bool(true),
		XffNumTrustedHops:        0,
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_SANITIZE,
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			IdleTimeout: durationpb.New(IdleTimeout),
		},
		RequestHeadersTimeout: durationpb.New(RequestHeadersTimeout),
		StreamIdleTimeout:     durationpb.New(StreamIdleTimeout),
		MaxRequestHeadersKb:   wrapperspb.UInt32(MaxRequestHeadersKB),
		AccessLog:             []*accesslogv3.AccessLog{log},
	}
	if hasHeader(l, HeadersXFCC) {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_SANITIZE_SET
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true),
			Cert:    true,
			Chain:   true,
			Uri:     true,
			Dns:     true,
		}
	}
	for _, x := range l.ClientCertHeaders {
		if x != HeadersXFCC && x != HeadersALB {
			return nil, fmt.Errorf("listener %q: unknown client_cert_headers entry %q (want xfcc or alb)", l.Name, x)
		}
	}
	if o.Static {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: RouteConfiguration(l)}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: l.Name,
			ConfigSource:    ads(),
		}}
	}
	return h, nil
}
