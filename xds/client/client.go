// Package client is the proxy's ADS client: one state-of-the-world
// AggregatedDiscoveryService stream that subscribes to Listener, Cluster,
// RouteConfiguration, ClusterLoadAssignment and Secret resources exactly as
// Envoy does, validates every response before it ACKs it, NACKs with an
// error_detail what it cannot honour, reconnects forever with backoff, and
// keeps the last good resources while the control plane is away.
//
// # Subscription
//
// Listeners and Clusters are requested as wildcards with an empty name list
// ("legacy wildcard"). Routes, ClusterLoadAssignments and Secrets are
// requested by name: the names referenced by the current listeners and
// clusters (see refs.go). A by-name type is first requested on a stream only
// once at least one name is known, because in SotW an empty name list in the
// first request of a type means wildcard. Once subscribed, a type whose names
// drop to none is sent an empty list, which unsubscribes (the xDS protocol's
// rule, implemented by go-control-plane's stream.Subscription).
//
// Checked against go-control-plane v0.14.0 (pkg/server/sotw/v3,
// pkg/cache/v3/simple.go):
//   - The explicit wildcard "*" is never answered by the ADS snapshot cache:
//     its by-name check (superset) requires every resource of the type to be
//     named in the request, and "*" names none. Hence the empty list for LDS
//     and CDS; the server must keep legacy wildcard active for them (the
//     default; do not use DeactivateLegacyWildcard).
//   - The cache answers a by-name request only when it names every resource
//     of that type in the snapshot, and a request the cache does not answer
//     opens no watch. The client therefore always sends its complete current
//     name list, and re-sends it whenever the references change.
//   - A request whose response_nonce is not the last nonce the server sent for
//     that type is ignored. Every request carries the type's latest nonce, and
//     every ACK carries the current names, so a subscription change that
//     crossed a response on the wire is repeated by the ACK of that response.
//   - An empty name list is answered with every resource of the type. For a
//     by-name type the client keeps only the names it subscribed to.
//   - After a NACK (which carries the previous version) the server re-sends
//     the rejected version at once (go-control-plane #46). The client NACKs
//     the first rejection of a version at once and damps the repeats of that
//     same version with an exponential delay (500ms doubling to 10s), so a bad
//     snapshot costs a few requests a minute, not a busy loop. A fixed
//     snapshot is picked up at the next repeat at the latest.
//   - On a new stream the cache answers every request, even at the current
//     version, because the stream has returned nothing yet. The client's
//     initial requests carry its last ACKed versions, as Envoy's do.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/internal/buildinfo"
)

// UserAgentName is the node's user_agent_name, so a control plane can tell the
// certplane proxy from Envoy.
const UserAgentName = "certplane-proxy"

// Resources is one consistent view of everything the client holds, by name.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Secrets   map[string]*tlsv3.Secret
	Versions  map[string]string // type URL -> last ACKed version
	// SecretDigests holds each Secret's SecretDigest, computed once when
	// it arrives: what tells a Secret sent again unchanged from a new one
	// when its content was released.
	SecretDigests map[string]Digest
	// ReleasedSecrets names the Secrets held without their CRL
	// (ReleaseSecret; Config.ReleaseSecrets): a consumer must not parse
	// them, only recognise them by digest.
	ReleasedSecrets map[string]bool
}

// Validator checks one response's resources of one type before it is ACKed.
// A non-nil error NACKs the whole response with err.Error() as error_detail,
// and the previous resources of that type are kept.
type Validator func(typeURL string, resources []proto.Message) error

// Change is one response the client is about to accept, handed to
// Config.Prepare.
type Change struct {
	TypeURL string
	Version string
	// Resources are the response's resources after the client's own
	// checks; for RDS, EDS and SDS only the subscribed names.
	Resources []proto.Message
	// View is everything the client holds once the change is accepted: what
	// OnUpdate then receives. The receiver must not mutate it.
	View Resources
}

// Config configures Run.
type Config struct {
	Target   string      // "host:port" or "unix:///path"
	TLS      *tls.Config // nil: plaintext (only allowed for loopback or unix; refused otherwise unless Insecure)
	Insecure bool
	NodeID   string
	// NodeCluster is the node's cluster, as Envoy's --service-cluster.
	NodeCluster string
	// UserAgentVersion is the node's user_agent_version; empty: the binary's
	// build version.
	UserAgentVersion string
	// Validate, when set, sees the resources of every response after the
	// client's own checks (decoding, proto validation, unknown fields,
	// references). For RDS, EDS and SDS it sees only subscribed names.
	Validate Validator
	// Prepare, when set, is called after Validate with every response the
	// client would accept, so that the consumer builds what accepting it
	// means (the proxy: its next state) while it can still refuse it: a
	// non-nil error NACKs the response as Validate's does. Otherwise the
	// client calls commit once, before OnUpdate and the ACK; a refused
	// change is never committed, so Prepare must leave nothing to undo.
	// Calls are serial, from Run's goroutine: each commit follows its own
	// Prepare, before the next Prepare.
	Prepare func(Change) (commit func(), err error)
	// OnUpdate is called after every ACKed response with a full copy-on-write
	// snapshot; the receiver must not mutate it. Calls are serial, from Run's
	// goroutine, so a slow OnUpdate delays the stream. A view may reference a
	// resource not received yet (a new listener's route or secret arrives in
	// a later response): waiting for it, as Envoy's warming does, is the
	// consumer's choice.
	OnUpdate func(Resources)
	// ReleaseSecrets, with Prepare, drops each Secret's validation_context
	// crl (ReleaseSecret) once Prepare accepted it, keeping its digest:
	// for a consumer that indexed the CRL in Prepare and never reads it
	// again (the proxy). The commit, OnUpdate and later views name such
	// Secrets in ReleasedSecrets. Ignored without Prepare.
	ReleaseSecrets bool
	// OnNACK, when set, is told of each response version the client rejects
	// (once per version, not for the damped repeats), with the error sent as
	// error_detail: for logs, metrics and status pages.
	OnNACK func(typeURL, version string, err error)
	// OnConnState reports each change of the connection to the control plane:
	// true once a stream is open, false when it ends (and when Run returns).
	OnConnState func(connected bool)
	Logger      *slog.Logger
	// Backoff gives the delay before reconnection attempt n (n >= 1 counts
	// consecutive failures; it restarts at 1 after a stream that received a
	// response). Default: exponential 100ms..10s with jitter.
	Backoff func(attempt int) time.Duration

	// nackBackoff damps repeated NACKs of one version (streak >= 1 counts the
	// repeats). Tests shorten it; zero means defaultNACKBackoff.
	nackBackoff func(streak int) time.Duration
}

// DefaultBackoff is exponential from 100ms to 10s, with equal jitter (a delay
// in [d/2, d)) so that proxies restarted together do not reconnect together.
func DefaultBackoff(attempt int) time.Duration {
	return jittered(expDelay(100*time.Millisecond, 10*time.Second, attempt))
}

func defaultNACKBackoff(streak int) time.Duration {
	return expDelay(500*time.Millisecond, 10*time.Second, streak)
}

// expDelay is base * 2^(n-1), capped.
func expDelay(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func jittered(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// Run keeps an ADS stream to cfg.Target until ctx is done, reconnecting with
// backoff, and keeps the last good Resources across reconnects. It returns nil
// once ctx is done, or at once an error for an unusable Config.
func Run(ctx context.Context, cfg Config) error {
	c, creds, err := newClient(cfg)
	if err != nil {
		return err
	}
	defer c.setConnected(false)
	attempt := 0
	for {
		healthy, err := c.session(ctx, creds)
		if ctx.Err() != nil {
			return nil
		}
		c.setConnected(false)
		if healthy {
			attempt = 1
		} else {
			attempt++
		}
		delay := c.backoff(attempt)
		c.log.Warn("xDS stream ended; reconnecting", "error", err, "attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// client is the state that outlives streams. Only Run's goroutine touches it.
type client struct {
	cfg         Config
	log         *slog.Logger
	node        *corev3.Node
	backoff     func(int) time.Duration
	nackBackoff func(int) time.Duration

	res  Resources     // the last view handed to OnUpdate
	subs subscriptions // by-name subscriptions derived from res

	connected bool
	reported  bool // whether connected has been reported at least once
}

func newClient(cfg Config) (*client, credentials.TransportCredentials, error) {
	creds, err := transportCredentials(&cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.NodeID == "" {
		return nil, nil, errors.New("xds client: empty NodeID: the control plane keys snapshots by node id")
	}
	c := &client{
		cfg:         cfg,
		log:         cfg.Logger,
		backoff:     cfg.Backoff,
		nackBackoff: cfg.nackBackoff,
		res:         emptyResources(),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("xds_target", cfg.Target)
	if c.backoff == nil {
		c.backoff = DefaultBackoff
	}
	if c.nackBackoff == nil {
		c.nackBackoff = defaultNACKBackoff
	}
	version := cfg.UserAgentVersion
	if version == "" {
		version = buildinfo.Get().Short()
	}
	c.node = &corev3.Node{
		Id:                   cfg.NodeID,
		Cluster:              cfg.NodeCluster,
		UserAgentName:        UserAgentName,
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: version},
	}
	return c, creds, nil
}

func (c *client) setConnected(up bool) {
	if c.reported && c.connected == up {
		return
	}
	c.connected, c.reported = up, true
	if c.cfg.OnConnState != nil {
		c.cfg.OnConnState(up)
	}
}
