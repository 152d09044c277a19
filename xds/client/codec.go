package client

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec recvCodec falls back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// recvCodec is gRPC's proto codec, except for the decoding of a
// DiscoveryResponse: the stock codec copies the received frames into one
// pooled buffer, then proto.Unmarshal copies each resource's bytes into
// its Any (protobuf-go never aliases bytes fields), and the pooled buffer
// stays in gRPC's pool afterwards. For a 46 MB trust Secret that is two
// transient copies, one of them kept. recvCodec copies the frames once
// into a buffer of its own and points each Any's value into it; the
// buffer is garbage once the resources are decoded.
type recvCodec struct{ std encoding.CodecV2 }

func newRecvCodec() recvCodec { return recvCodec{std: encoding.GetCodecV2("proto")} }

func (recvCodec) Name() string { return "proto" }

func (c recvCodec) Marshal(v any) (mem.BufferSlice, error) { return c.std.Marshal(v) }

func (c recvCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*discovery.DiscoveryResponse)
	if !ok || data.Len() < aliasMinBytes {
		return c.std.Unmarshal(data, v)
	}
	b := data.Materialize() // owned: gRPC frees data, not this
	if decodeAliased(b, r) {
		return nil
	}
	return proto.Unmarshal(b, r)
}

// aliasMinBytes is the response size from which the resources alias the
// received bytes; below it the stock decoding is as cheap.
const aliasMinBytes = 1 << 20

// decodeAliased decodes b into r with every Any value a sub-slice of b,
// or returns false when b holds anything it does not expect
// (the caller then decodes it the stock way). The fields other than the
// resources are decoded by proto.Unmarshal from a copy of their bytes.
func decodeAliased(b []byte, r *discovery.DiscoveryResponse) bool {
	var rest []byte
	var anys []*anypb.Any
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false
		}
		if num != 2 || typ != protowire.BytesType { // DiscoveryResponse.resources
			rest = append(rest, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, _ := protowire.ConsumeBytes(b[n:])
		a, ok := anyAliased(v)
		if !ok {
			return false
		}
		anys = append(anys, a)
		b = b[n+m:]
	}
	if err := proto.Unmarshal(rest, r); err != nil {
		return false // the caller decodes b again, resetting r
	}
	r.Resources = anys
	return true
}

// anyAliased decodes one google.protobuf.Any, its value aliasing b.
func anyAliased(b []byte) (*anypb.Any, bool) {
	a := &anypb.Any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false
		}
		switch num {
		case 1:
			a.TypeUrl = string(v)
		case 2:
			a.Value = v[:len(v):len(v)]
		default:
			return nil, false
		}
		b = b[n+m:]
	}
	return a, true
}
