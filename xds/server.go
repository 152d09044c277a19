package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/certplane/certplane/status"
)

// ServerOptions configures a Server.
type ServerOptions struct {
	// NodeID, when set, serves only the node with this ID; by default every
	// node gets the same snapshot.
	NodeID string
	// BindNodeID refuses a stream whose node id is not one of its client
	// certificate's NodeIdentities (xDS mTLS).
	BindNodeID bool
	// Registry receives the xDS metrics (connected nodes, NACKs); nil
	// registers them nowhere.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Server is the xDS side of the control plane: the snapshot cache with its
// Publisher, and the ADS server that serves the cache and records who is
// connected and what they ACKed or NACKed. It starts nothing until Serve.
type Server struct {
	log     *slog.Logger
	cache   cache.SnapshotCache
	pub     *Publisher
	tracker *tracker
}

// NewServer builds a Server; it starts no goroutine and opens nothing.
func NewServer(o ServerOptions) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("xds metrics: %w", err)
	}
	c := cache.NewSnapshotCache(true, nodeHash{only: o.NodeID}, controlPlaneLogger(log))
	s := &Server{log: log, cache: c, pub: NewPublisher(c, o.NodeID), tracker: newTracker(o.NodeID, log, m)}
	s.pub.wire = wireResources{} // Serve's gRPC server has wireCodec
	s.tracker.bind = o.BindNodeID
	return s, nil
}

// Publisher is what publishes into the server's cache.
func (s *Server) Publisher() *Publisher { return s.pub }

// Nodes are the connected xDS clients and what each did with each type.
func (s *Server) Nodes() []status.Node { return s.tracker.nodes() }

// Serve serves xDS on lis until ctx is done; it then ends every stream.
func (s *Server) Serve(ctx context.Context, lis net.Listener, creds credentials.TransportCredentials) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := server.NewServer(ctx, s.cache, s.tracker.callbacks(), sotw.WithOrderedADS(), sotw.WithLogger(controlPlaneLogger(s.log)))
	g := NewGRPCServer(srv, creds)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("xds server: %w", err)
	case <-ctx.Done():
	}
	// ADS streams never end on their own, so a graceful stop would wait
	// forever: stop, which ends them, and clients reconnect elsewhere.
	g.Stop()
	<-errc
	return nil
}

// NewGRPCServer registers srv's discovery services on a new gRPC server:
// the aggregated discovery service and, for clients that do not use ADS,
// the per-type services, using creds.
func NewGRPCServer(srv server.Server, creds credentials.TransportCredentials) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1000),
		// Envoy keeps one ADS stream open for its lifetime; let it ping, and
		// notice dead peers so their status does not linger.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	// The stock proto codec, but a large Secret's bytes are sent in place.
	opts = append(opts, grpc.ForceServerCodecV2(newWireCodec()))
	g := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(g, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(g, srv)
	return g
}
