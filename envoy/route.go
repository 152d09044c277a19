package envoy

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/certplane/certplane/config"
)

// Client certificate header selections (config.Listener.ClientCertHeaders).
const (
	HeadersXFCC = "xfcc"
	HeadersALB  = "alb"
)

// The ALB-style client certificate headers, as AWS ALB names them.
const (
	HeaderALBSerial   = "x-amzn-mtls-clientcert-serial-number"
	HeaderALBIssuer   = "x-amzn-mtls-clientcert-issuer"
	HeaderALBSubject  = "x-amzn-mtls-clientcert-subject"
	HeaderALBValidity = "x-amzn-mtls-clientcert-validity"
	HeaderALBLeaf     = "x-amzn-mtls-clientcert-leaf"
)

// ALBHeaders lists the ALB headers in the order they are added.
var ALBHeaders = []string{HeaderALBSerial, HeaderALBIssuer, HeaderALBSubject, HeaderALBValidity, HeaderALBLeaf}

// albValues are Envoy substitution formats. Like ALB: serial in hex, issuer
// and subject in RFC 2253, validity in UTC, the leaf as URL-encoded PEM.
var albValues = map[string]string{
	HeaderALBSerial:   "%DOWNSTREAM_PEER_SERIAL%",
	HeaderALBIssuer:   "%DOWNSTREAM_PEER_ISSUER%",
	HeaderALBSubject:  "%DOWNSTREAM_PEER_SUBJECT%",
	HeaderALBValidity: "NotBefore=%DOWNSTREAM_PEER_CERT_V_START(%Y-%m-%dT%H:%M:%SZ)%;NotAfter=%DOWNSTREAM_PEER_CERT_V_END(%Y-%m-%dT%H:%M:%SZ)%",
	HeaderALBLeaf:     "%DOWNSTREAM_PEER_CERT%",
}

// RouteTimeout bounds one request end to end (Envoy's default is 15s).
const RouteTimeout = 60 * time.Second

// RouteConfiguration routes listener l's paths to its backends. It always
// strips inbound ALB headers, so a client cannot forge them, and sets them
// from the verified peer certificate when l selects "alb".
func RouteConfiguration(l *config.Listener) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: l.Name, Domains: []string{"*"}}
	for _, r := range l.Routes {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: r.PathPrefix}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: r.Backend},
				Timeout:          durationpb.New(RouteTimeout),
			}},
		})
	}
	rc := &routev3.RouteConfiguration{
		Name:                   l.Name,
		VirtualHosts:           []*routev3.VirtualHost{vh},
		RequestHeadersToRemove: append([]string(nil), ALBHeaders...),
	}
	if hasHeader(l, HeadersALB) {
		for _, h := range ALBHeaders {
			rc.RequestHeadersToAdd = append(rc.RequestHeadersToAdd, &corev3.HeaderValueOption{
				Header:         &corev3.HeaderValue{Key: h, Value: albValues[h]},
				AppendAction:   corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				KeepEmptyValue: false,
			})
		}
	}
	return rc
}

func hasHeader(l *config.Listener, h string) bool {
	for _, x := range l.ClientCertHeaders {
		if x == h {
			return true
		}
	}
	return false
}
