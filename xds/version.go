package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// canonicalize re-marshals every Any inside m deterministically, in place.
// anypb.New marshals without Deterministic, so a map inside a typed config
// (the access log's json_format is a Struct) could serialise differently on
// each build; the content hash would then change with no change of content
// and re-send the listener. After this, equal content gives equal bytes.
func canonicalize(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
		}
		if err := canonicalize(inner.ProtoReflect()); err != nil {
			return err
		}
		b, err := deterministic.Marshal(inner)
		if err != nil {
			return fmt.Errorf("encode %s: %w", a.GetTypeUrl(), err)
		}
		a.Value = b
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = canonicalize(mv.Message())
				return err == nil
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = canonicalize(l.Get(i).Message())
			}
		case fd.Message() != nil:
			err = canonicalize(v.Message())
		}
		return err == nil
	})
	return err
}

// hasher computes content hashes of resources, each distinct resource
// (by pointer) once. Units of one update share their Secrets (see
// envoy.Translator), and a trust Secret can hold tens of MB of CRL: without
// this, every unit's check and the merged snapshot would each marshal it
// again. Resources are immutable once built, so the pointer identifies the
// content for the life of a hasher; use one per update.
type hasher struct {
	sums map[types.Resource][sha256.Size]byte
}

func newHasher() *hasher { return &hasher{sums: map[types.Resource][sha256.Size]byte{}} }

// sum is the sha256 of r's deterministic encoding.
func (h *hasher) sum(r types.Resource) ([sha256.Size]byte, error) {
	if s, ok := h.sums[r]; ok {
		return s, nil
	}
	b, err := deterministic.Marshal(r)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	s := sha256.Sum256(b)
	h.sums[r] = s
	return s, nil
}

// typeVersion is the content hash of one type's resources: the name and the
// hash of the deterministic encoding of each, in name order. Equal content,
// equal version; so an unchanged type is never re-sent.
func (h *hasher) typeVersion(items map[string]types.Resource) (string, error) {
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	slices.Sort(names)
	d := sha256.New()
	for _, n := range names {
		s, err := h.sum(items[n])
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", n, err)
		}
		fmt.Fprintf(d, "%d:%s", len(n), n)
		d.Write(s[:])
	}
	return hex.EncodeToString(d.Sum(nil)[:8]), nil
}
