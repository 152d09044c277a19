package xds

import (
	"context"
	"crypto/x509"
	"log/slog"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/certplane/certplane/status"
)

// tracker is the server's callbacks: it knows every open stream, the node
// behind it, and what each node ACKed and NACKed per type. It is also what
// stops a NACK from becoming a resend loop (see onRequest).
type tracker struct {
	only    string // serve only this node ID, when set
	bind    bool   // a node id must be an identity of the client certificate
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	mu      sync.Mutex
	streams map[int64]*streamState
	// ids counts the identified open streams of each node ID: the
	// connected gauge is its size, kept as streams come and go rather than
	// recounted over every stream (with 1,000 clients that recount, on
	// each connect and on each delta request, was quadratic).
	ids map[string]int
}

type streamState struct {
	node   *core.Node
	peer   string
	cert   *x509.Certificate // the client certificate, nil without mTLS
	opened time.Time
	delta  bool
	// sent holds, per type URL, the nonce and version of the last response.
	sent  map[string]sentResponse
	types map[string]*status.TypeState
}

type sentResponse struct{ nonce, version string }

func newTracker(only string, log *slog.Logger, m *metrics) *tracker {
	return &tracker{only: only, log: log, metrics: m, now: time.Now, streams: map[int64]*streamState{}, ids: map[string]int{}}
}

func (t *tracker) callbacks() server.Callbacks {
	return server.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			t.open(ctx, id, false)
			return nil
		},
		StreamClosedFunc:  func(id int64, _ *core.Node) { t.close(id) },
		StreamRequestFunc: t.onRequest,
		StreamResponseFunc: func(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			t.onResponse(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			t.open(ctx, id, true)
			return nil
		},
		DeltaStreamClosedFunc:  func(id int64, _ *core.Node) { t.close(id) },
		StreamDeltaRequestFunc: t.onDeltaRequest,
		StreamDeltaResponseFunc: func(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
			t.onResponse(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
		},
		FetchRequestFunc: func(ctx context.Context, req *discovery.DiscoveryRequest) error {
			return t.admit(req.GetNode(), peerCert(ctx))
		},
	}
}

func (t *tracker) open(ctx context.Context, id int64, delta bool) {
	st := &streamState{opened: t.now(), delta: delta, sent: map[string]sentResponse{}, types: map[string]*status.TypeState{}, cert: peerCert(ctx)}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		st.peer = p.Addr.String()
	}
	t.mu.Lock()
	t.streams[id] = st
	t.mu.Unlock()
}

func (t *tracker) close(id int64) {
	t.mu.Lock()
	st := t.streams[id]
	delete(t.streams, id)
	if st != nil && st.node != nil {
		nid := st.node.GetId()
		if t.ids[nid]--; t.ids[nid] <= 0 {
			delete(t.ids, nid)
		}
	}
	n := t.connectedLocked()
	t.mu.Unlock()
	t.metrics.setConnected(n)
	if st != nil && st.node != nil {
		t.log.Info("xds stream closed", "node", st.node.GetId(), "stream", id, "peer", st.peer)
	}
}

// admit refuses a node the server does not serve: better a clear error at
// once than a stream that is never answered. With bind, the node id must
// be one of cert's NodeIdentities.
func (t *tracker) admit(n *core.Node, cert *x509.Certificate) error {
	if t.only != "" && n.GetId() != t.only {
		return grpcstatus.Errorf(codes.PermissionDenied, "node %q is not served: this control plane serves only node %q (--node-id)", n.GetId(), t.only)
	}
	if !t.bind {
		return nil
	}
	if cert == nil {
		return grpcstatus.Errorf(codes.PermissionDenied, "node %q refused: node ids are bound to client certificates (--xds-bind-node-id) and this connection has none", n.GetId())
	}
	if !nodeBound(n.GetId(), cert) {
		return grpcstatus.Errorf(codes.PermissionDenied, "node %q refused: node ids are bound to client certificates (--xds-bind-node-id) and this one may be %q only", n.GetId(), NodeIdentities(cert))
	}
	return nil
}

// onRequest records ACKs and NACKs. On a NACK of the version last sent for
// a type it rewrites the request's version_info to the rejected version.
//
// Why: a NACK carries the last version the client accepted, which differs
// from the snapshot's, so go-control-plane v0.14.0 answers it at once with
// the very version just rejected (go-control-plane#46), which the client
// rejects again: a resend loop as fast as the network allows. With the
// rejected version in version_info, the cache sees the client as current and
// holds the watch until the content of that type changes. The client keeps
// its last accepted configuration meanwhile, which is what a NACK means.
func (t *tracker) onRequest(id int64, req *discovery.DiscoveryRequest) error {
	t.mu.Lock()
	st := t.streams[id]
	if st == nil { // not possible: open precedes requests
		t.mu.Unlock()
		return nil
	}
	first := st.node == nil && req.GetNode() != nil
	if first {
		st.node = req.GetNode()
		t.ids[st.node.GetId()]++
	}
	node := st.node
	t.mu.Unlock()
	if first {
		if err := t.admit(node, st.cert); err != nil {
			t.log.Warn("xds node refused", "node", node.GetId(), "peer", st.peer, "err", err)
			return err
		}
		t.mu.Lock()
		n := t.connectedLocked()
		t.mu.Unlock()
		t.metrics.setConnected(n)
		t.log.Info("xds stream opened", "node", node.GetId(), "cluster", node.GetCluster(), "stream", id, "peer", st.peer)
	} else if node == nil {
		return grpcstatus.Error(codes.InvalidArgument, "the first request on a stream must carry a node")
	}

	typeURL := req.GetTypeUrl()
	nonce := req.GetResponseNonce()
	if nonce == "" {
		return nil // an initial request: nothing to acknowledge
	}
	t.mu.Lock()
	sent, ok := st.sent[typeURL]
	if !ok || sent.nonce != nonce {
		t.mu.Unlock()
		return nil // stale nonce: the server ignores the request too
	}
	ts := st.typeState(typeURL)
	if req.GetErrorDetail() == nil {
		ts.LastACKed = sent.version
		t.mu.Unlock()
		return nil
	}
	detail := req.GetErrorDetail().GetMessage()
	ts.LastNACKed = sent.version
	ts.NACKDetail = detail
	ts.NACKedAt = t.now()
	ts.NACKs++
	t.mu.Unlock()
	t.metrics.nack(typeURL)
	t.log.Warn("xds NACK", "node", node.GetId(), "type", TypeName(typeURL), "rejected_version", sent.version,
		"kept_version", req.GetVersionInfo(), "detail", detail)
	req.VersionInfo = sent.version
	return nil
}

// onDeltaRequest records delta NACKs. The delta server compares resource
// versions it sent, not the request's, so it does not loop on a NACK.
func (t *tracker) onDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	t.mu.Lock()
	st := t.streams[id]
	if st == nil {
		t.mu.Unlock()
		return nil
	}
	first := st.node == nil && req.GetNode() != nil
	if first {
		st.node = req.GetNode()
		t.ids[st.node.GetId()]++
	}
	node := st.node
	var rejected string
	if req.GetErrorDetail() != nil {
		if sent, ok := st.sent[req.GetTypeUrl()]; ok && sent.nonce == req.GetResponseNonce() {
			rejected = sent.version
			ts := st.typeState(req.GetTypeUrl())
			ts.LastNACKed = rejected
			ts.NACKDetail = req.GetErrorDetail().GetMessage()
			ts.NACKedAt = t.now()
			ts.NACKs++
		}
	} else if sent, ok := st.sent[req.GetTypeUrl()]; ok && sent.nonce == req.GetResponseNonce() {
		st.typeState(req.GetTypeUrl()).LastACKed = sent.version
	}
	n := t.connectedLocked()
	t.mu.Unlock()
	if first {
		if err := t.admit(node, st.cert); err != nil {
			t.log.Warn("xds node refused", "node", node.GetId(), "peer", st.peer, "err", err)
			return err
		}
		t.metrics.setConnected(n)
	}
	if rejected != "" {
		t.metrics.nack(req.GetTypeUrl())
		t.log.Warn("xds NACK", "node", node.GetId(), "type", TypeName(req.GetTypeUrl()), "rejected_version", rejected,
			"detail", req.GetErrorDetail().GetMessage())
	}
	return nil
}

func (t *tracker) onResponse(id int64, typeURL, nonce, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[id]
	if st == nil {
		return
	}
	st.sent[typeURL] = sentResponse{nonce: nonce, version: version}
	st.typeState(typeURL).LastSent = version
}

func (st *streamState) typeState(typeURL string) *status.TypeState {
	ts := st.types[typeURL]
	if ts == nil {
		ts = &status.TypeState{}
		st.types[typeURL] = ts
	}
	return ts
}

// connectedLocked counts distinct node IDs with an identified open stream.
func (t *tracker) connectedLocked() int { return len(t.ids) }

// nodes returns every connected node, merging its streams (Envoy opens one
// ADS stream; other clients may open one per type).
func (t *tracker) nodes() []status.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	byID := map[string]*status.Node{}
	for _, id := range sortedStreamIDs(t.streams) {
		st := t.streams[id]
		if st.node == nil {
			continue
		}
		n := byID[st.node.GetId()]
		if n == nil {
			n = &status.Node{ID: st.node.GetId(), Cluster: st.node.GetCluster(), Peer: st.peer, Connected: st.opened, Types: map[string]status.TypeState{}}
			byID[n.ID] = n
		}
		n.Streams++
		if st.opened.Before(n.Connected) {
			n.Connected = st.opened
		}
		for typeURL, ts := range st.types {
			n.Types[TypeName(typeURL)] = mergeTypeState(n.Types[TypeName(typeURL)], *ts)
		}
	}
	out := make([]status.Node, 0, len(byID))
	for _, id := range sortedKeys(byID) {
		out = append(out, *byID[id])
	}
	return out
}

// mergeTypeState combines one type's state from two streams of a node,
// preferring the most recent NACK.
func mergeTypeState(a, b status.TypeState) status.TypeState {
	if a == (status.TypeState{}) {
		return b
	}
	out := b
	if out.LastSent == "" {
		out.LastSent = a.LastSent
	}
	if out.LastACKed == "" {
		out.LastACKed = a.LastACKed
	}
	if a.NACKedAt.After(b.NACKedAt) {
		out.LastNACKed, out.NACKDetail, out.NACKedAt = a.LastNACKed, a.NACKDetail, a.NACKedAt
	}
	out.NACKs = a.NACKs + b.NACKs
	return out
}

func sortedStreamIDs(m map[int64]*streamState) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
