package xds

import (
	"errors"
	"fmt"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec wireCodec falls back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// wireCodec is gRPC's proto codec, except that a discovery response whose
// resources include stubs of lazy resources (see lazyResource) is sent
// with each stub replaced by the resource's encoding, its large bytes
// fields referenced in place: no copy of a 46 MB Secret per stream. The
// bytes sent are those the stock codec would send for the same response
// with each resource marshalled (TestWireCodecSendsMarshalledBytes).
type wireCodec struct{ std encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{std: encoding.GetCodecV2("proto")} }

// Name is the stock codec's: the content type on the wire is unchanged.
func (wireCodec) Name() string { return "proto" }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.std.Unmarshal(data, v) }

// Where the Any values sit: DiscoveryResponse.resources[].value, and
// DeltaDiscoveryResponse.resources[].resource.value.
var (
	sotwValuePath  = []protowire.Number{2, 2}
	deltaValuePath = []protowire.Number{2, 2, 2}
)

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	var path []protowire.Number
	var m proto.Message
	switch r := v.(type) {
	case *discovery.DiscoveryResponse:
		for _, a := range r.GetResources() {
			if isStub(a.GetValue()) {
				path, m = sotwValuePath, r
				break
			}
		}
	case *discovery.DeltaDiscoveryResponse:
		for _, res := range r.GetResources() {
			if isStub(res.GetResource().GetValue()) {
				path, m = deltaValuePath, r
				break
			}
		}
	}
	if m == nil {
		return c.std.Marshal(v)
	}
	small, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xds codec: %w", err)
	}
	var s spliced
	if err := s.expand(small, path); err != nil {
		return nil, fmt.Errorf("xds codec: %w", err)
	}
	s.flush()
	out := make(mem.BufferSlice, len(s.pieces))
	for i, p := range s.pieces {
		out[i] = mem.SliceBuffer(p) // never freed nor written to: shared, immutable bytes
	}
	return out, nil
}

// errStubLost is a stub whose resource cannot be found: sending it would
// hand the client garbage, so the response fails instead.
var errStubLost = errors.New("a lazy resource's encoding is gone")

// expand appends b, a message encoding, with each length-delimited field
// along path that is a stub replaced by what it stands for.
func (s *spliced) expand(b []byte, path []protowire.Number) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		if num != path[0] || typ != protowire.BytesType {
			s.addRun(b[:n+m])
			b = b[n+m:]
			continue
		}
		v, _ := protowire.ConsumeBytes(b[n:])
		var inner spliced
		if len(path) == 1 {
			if !isStub(v) {
				s.addRun(b[:n+m])
				b = b[n+m:]
				continue
			}
			enc, ok := lookupStub(v)
			if !ok {
				return errStubLost
			}
			inner.pieces, inner.size = enc.pieces, enc.size
		} else if err := inner.expand(v, path[1:]); err != nil {
			return err
		}
		s.addRun(protowire.AppendVarint(protowire.AppendTag(nil, num, typ), uint64(inner.size)))
		s.addSpliced(&inner)
		b = b[n+m:]
	}
	return nil
}
