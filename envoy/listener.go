package envoy

import (
	"fmt"
	"slices"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/certplane/certplane/config"
)

// Listener builds listener l of model m: one filter chain per certificate,
// each terminating TLS with secrets from SDS and handing HTTP to a connection
// manager. With several certificates, tls_inspector reads the SNI and the
// chain whose certificate's DNS SANs match it is chosen; clients with no or
// an unknown SNI get the first (default) certificate. server_names and a
// shared address shape the chains as planChains says; on a shared address
// the Listener built here is l's part of the address's Listener
// (SharedListenerName), holding only l's chains: MergeListeners joins the
// parts.
func Listener(m *config.Model, l *config.Listener, o Options) (*listenerv3.Listener, error) {
	if len(l.Certificates) == 0 {
		return nil, fmt.Errorf("listener %q: no certificate", l.Name)
	}
	names, err := serverNames(m, l)
	if err != nil {
		return nil, err
	}
	hcm, err := HTTPConnectionManager(l, o)
	if err != nil {
		return nil, err
	}
	hcmAny, err := typed(hcm)
	if err != nil {
		return nil, err
	}
	name := ListenerName(l)
	log, err := ListenerAccessLog(name)
	if err != nil {
		return nil, err
	}
	lis := &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       l.Host,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: l.Port},
		}}},
		AccessLog:                     []*accesslogv3.AccessLog{log},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(PerConnectionBufferLimit),
	}
	plans, withDefault := planChains(l, names)
	chain := func(cert string) (*listenerv3.FilterChain, error) {
		tctx, err := DownstreamTLSContext(l, cert, o)
		if err != nil {
			return nil, err
		}
		ts, err := transportSocket(tctx)
		if err != nil {
			return nil, err
		}
		return &listenerv3.FilterChain{
			Name: FilterChainName(l.Name, cert),
			Filters: []*listenerv3.Filter{{
				Name:       HTTPConnectionManagerName,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
			TransportSocket: ts,
			Metadata:        OCSPMetadata(l),
		}, nil
	}
	for _, p := range plans {
		fc, err := chain(p.cert)
		if err != nil {
			return nil, err
		}
		if len(p.names) > 0 {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: p.names}
		}
		lis.FilterChains = append(lis.FilterChains, fc)
	}
	if withDefault {
		def, err := chain(l.Certificates[0])
		if err != nil {
			return nil, err
		}
		def.Name = DefaultFilterChainName(l.Name, l.Certificates[0])
		lis.DefaultFilterChain = def
	}
	if len(lis.FilterChains) > 1 || withDefault || l.SharedAddress || len(l.ServerNames) > 0 {
		inspector, err := typed(&tlsinspectorv3.TlsInspector{})
		if err != nil {
			return nil, err
		}
		lis.ListenerFilters = []*listenerv3.ListenerFilter{{
			Name:       TLSInspectorName,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: inspector},
		}}
	}
	return lis, nil
}

// serverNames returns, per certificate of l, the DNS SANs its filter chain
// matches. Envoy refuses two chains with the same match and SNI could not
// choose between them, so a name in two certificates is an error (config
// reports it first; this keeps the builder safe on its own).
func serverNames(m *config.Model, l *config.Listener) ([][]string, error) {
	out := make([][]string, len(l.Certificates))
	seen := map[string]string{}
	for i, cert := range l.Certificates {
		if slices.Index(l.Certificates, cert) != i {
			return nil, fmt.Errorf("listener %q: certificate %q is listed twice", l.Name, cert)
		}
		kp, ok := m.Servers[cert]
		if !ok || len(kp.Chain) == 0 {
			return nil, fmt.Errorf("listener %q: server certificate %q is not loaded (certs/server/%s)", l.Name, cert, cert)
		}
		if len(l.Certificates) == 1 && len(l.ServerNames) == 0 {
			break
		}
		for _, n := range kp.Chain[0].DNSNames {
			n = strings.ToLower(n)
			if other, dup := seen[n]; dup {
				if other == cert { // a SAN repeated within one certificate
					continue
				}
				return nil, fmt.Errorf("listener %q: DNS name %q is in both certificate %q and certificate %q; SNI could not choose between them", l.Name, n, other, cert)
			}
			seen[n] = cert
			out[i] = append(out[i], n)
		}
		if len(out[i]) == 0 && len(l.ServerNames) == 0 {
			return nil, fmt.Errorf("listener %q: certificate %q has no DNS SAN, so SNI could not select it among several certificates", l.Name, cert)
		}
	}
	return out, nil
}
