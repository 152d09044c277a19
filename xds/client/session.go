package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// typeStream is the per-type protocol state of one stream.
type typeStream struct {
	subscribed bool     // a request for this type was sent on this stream
	sentNames  []string // the names of that last request
	nonce      string   // the nonce of the last response of this type

	// errorDetail is set by a NACK and cleared by the next ACK; like Envoy,
	// every request of the type carries it meanwhile.
	errorDetail string
	rejected    string    // the version last NACKed
	streak      int       // consecutive NACKs of rejected
	retryAt     time.Time // a damped NACK is due then; zero: none pending
}

// stream is one ADS stream: the session goroutine is its only sender.
type stream struct {
	c        *client
	ads      discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	types    [numKinds]typeStream
	nodeSent bool
}

// session runs one connection and stream until either ends or ctx is done.
// healthy reports whether the server answered at least once.
func (c *client) session(ctx context.Context, creds credentials.TransportCredentials) (healthy bool, err error) {
	conn, err := grpc.NewClient(c.cfg.Target, dialOptions(creds)...)
	if err != nil {
		return false, fmt.Errorf("xds client: %w", err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("open ADS stream: %w", err)
	}
	c.setConnected(true)
	c.log.Info("xDS stream open")

	responses := make(chan *discoveryv3.DiscoveryResponse)
	recvErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			resp, err := ads.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case responses <- resp:
			case <-sctx.Done():
				return
			}
		}
	}()

	s := &stream{c: c, ads: ads}
	if err := s.start(); err != nil {
		return false, err
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		s.armRetry(retry)
		select {
		case <-ctx.Done():
			return healthy, ctx.Err()
		case err := <-recvErr:
			return healthy, fmt.Errorf("ADS stream: %w", err)
		case resp := <-responses:
			healthy = true
			if err := s.handle(resp); err != nil {
				return healthy, err
			}
		case <-retry.C:
			if err := s.sendDueNACKs(); err != nil {
				return healthy, err
			}
		}
	}
}

// start sends the initial requests: the wildcards, then every by-name type
// with known names, each at the last ACKed version so the server knows what
// the client already holds.
func (s *stream) start() error {
	if err := s.send(kListener); err != nil {
		return err
	}
	if err := s.send(kCluster); err != nil {
		return err
	}
	return s.syncSubscriptions()
}

// syncSubscriptions sends a request for every by-name type whose names differ
// from the last request of this stream. A type never requested on this stream
// is not requested with no names: that would be a wildcard subscription.
func (s *stream) syncSubscriptions() error {
	for _, k := range []kind{kRoute, kEndpoint, kSecret} {
		names, ts := s.c.subs[k], &s.types[k]
		if !ts.subscribed && len(names) == 0 {
			continue
		}
		if ts.subscribed && slices.Equal(names, ts.sentNames) {
			continue
		}
		s.c.log.Info("xDS subscription", "type", k.String(), "names", names)
		if err := s.send(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) request(k kind) *discoveryv3.DiscoveryRequest {
	info, ts := k.info(), &s.types[k]
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       info.url,
		VersionInfo:   s.c.res.Versions[info.url],
		ResponseNonce: ts.nonce,
	}
	if !info.wildcard {
		req.ResourceNames = slices.Clone(s.c.subs[k])
	}
	if ts.errorDetail != "" {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: ts.errorDetail}
	}
	if !s.nodeSent {
		// Only the first request carries the node; servers remember it per
		// stream, as go-control-plane does.
		req.Node = proto.Clone(s.c.node).(*corev3.Node)
	}
	return req
}

func (s *stream) send(k kind) error {
	req := s.request(k)
	if err := s.ads.Send(req); err != nil {
		return fmt.Errorf("send %s request: %w", k, err)
	}
	ts := &s.types[k]
	s.nodeSent = true
	ts.subscribed = true
	ts.sentNames = req.GetResourceNames()
	ts.retryAt = time.Time{} // any request of the type re-asks for it
	return nil
}

// handle processes one response: ACK and publish, or NACK and keep.
func (s *stream) handle(resp *discoveryv3.DiscoveryResponse) error {
	k, ok := kindOf(resp.GetTypeUrl())
	if !ok || !s.types[k].subscribed {
		s.c.log.Warn("xDS response for a type not subscribed; ignored", "type_url", resp.GetTypeUrl())
		return nil
	}
	ts := &s.types[k]
	ts.nonce = resp.GetNonce()
	n := len(resp.GetResources())
	u, commit, err := s.accept(k, resp)
	if err != nil {
		return s.nack(k, resp.GetVersionInfo(), err)
	}
	ts.errorDetail, ts.rejected, ts.streak, ts.retryAt = "", "", 0, time.Time{}
	if s.c.cfg.ReleaseSecrets && s.c.cfg.Prepare != nil && k == kSecret {
		// Prepare has taken the Secrets: from here on keep their digests,
		// not their CRLs, so that the commit's GC finds the PEM garbage.
		u.res = releaseSecrets(u.res)
	}
	s.c.res, s.c.subs = u.res, u.subs
	if commit != nil {
		commit()
	}
	s.c.log.Debug("xDS ACK", "type", k.String(), "version", resp.GetVersionInfo(), "resources", n)
	if s.c.cfg.OnUpdate != nil {
		s.c.cfg.OnUpdate(u.res)
	}
	if err := s.send(k); err != nil {
		return err
	}
	return s.syncSubscriptions()
}

// accept runs every check on a response, computes the view it yields and
// has the consumer prepare it; commit (nil without Config.Prepare) serves
// what was prepared.
func (s *stream) accept(k kind, resp *discoveryv3.DiscoveryResponse) (u update, commit func(), err error) {
	items, err := decode(k, resp.GetResources())
	// The resources are decoded: drop their encoded bytes now, before the
	// consumer parses them, whoever still holds resp (the receiving
	// goroutine's stack kept the last response until the next came): 46 MB
	// for a trust Secret with a 1M-serial CRL.
	resp.Resources = nil
	if err != nil {
		return update{}, nil, err
	}
	if !k.info().wildcard {
		items = subscribed(items, s.c.subs[k])
	}
	u, err = next(s.c.res, s.c.subs, k, resp.GetVersionInfo(), items)
	if err != nil {
		return update{}, nil, err
	}
	if s.c.cfg.Validate == nil && s.c.cfg.Prepare == nil {
		return u, nil, nil
	}
	msgs := make([]proto.Message, len(items))
	for i, it := range items {
		msgs[i] = it.msg
	}
	if s.c.cfg.Validate != nil {
		if err := s.c.cfg.Validate(k.info().url, msgs); err != nil {
			return update{}, nil, err
		}
	}
	if s.c.cfg.Prepare != nil {
		ch := Change{TypeURL: k.info().url, Version: resp.GetVersionInfo(), Resources: msgs, View: u.res}
		if commit, err = s.c.cfg.Prepare(ch); err != nil {
			return update{}, nil, err
		}
	}
	return u, commit, nil
}

// nack rejects a response. The first rejection of a version is sent at once;
// when the server answers it with that same version again (go-control-plane
// does), the repeats are damped.
func (s *stream) nack(k kind, version string, cause error) error {
	ts := &s.types[k]
	ts.errorDetail = cause.Error()
	if ts.streak > 0 && version == ts.rejected {
		ts.streak++
	} else {
		ts.rejected, ts.streak = version, 1
	}
	if ts.streak == 1 {
		s.c.log.Warn("xDS NACK", "type", k.String(), "version", version, "kept_version", s.c.res.Versions[k.info().url], "error", ts.errorDetail)
		if s.c.cfg.OnNACK != nil {
			s.c.cfg.OnNACK(k.info().url, version, cause)
		}
		return s.send(k)
	}
	delay := s.c.nackBackoff(ts.streak - 1)
	s.c.log.Debug("xDS NACK repeated; damped", "type", k.String(), "version", version, "streak", ts.streak, "delay", delay)
	ts.retryAt = time.Now().Add(delay)
	return nil
}

func (s *stream) armRetry(t *time.Timer) {
	var due time.Time
	for k := range numKinds {
		if at := s.types[k].retryAt; !at.IsZero() && (due.IsZero() || at.Before(due)) {
			due = at
		}
	}
	if due.IsZero() {
		due = time.Now().Add(time.Hour)
	}
	t.Reset(time.Until(due))
}

func (s *stream) sendDueNACKs() error {
	now := time.Now()
	var errs []error
	for k := range numKinds {
		if at := s.types[k].retryAt; !at.IsZero() && !at.After(now) {
			errs = append(errs, s.send(k))
		}
	}
	return errors.Join(errs...)
}
