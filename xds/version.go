package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/certplane/certplane/envoy"
	"github.com/certplane/certplane/internal/rope"
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
// (by pointer) once, and remembers which it validated. Units of one update
// share their Secrets (see envoy.Translator), and a trust Secret can hold
// tens of MB of CRL: without this, every unit's check and the merged
// snapshot would each marshal it again. Resources are immutable once built,
// so the pointer identifies the content for as long as the resource is
// held; the publisher keeps one hasher across updates and retains only the
// resources it serves.
type hasher struct {
	sums  map[types.Resource][sha256.Size]byte
	valid map[types.Resource]bool
	refs  map[types.Resource][]string // SDS names a Listener or Cluster references
}

func newHasher() *hasher {
	return &hasher{sums: map[types.Resource][sha256.Size]byte{}, valid: map[types.Resource]bool{}, refs: map[types.Resource][]string{}}
}

// check validates r (once) and computes its sum.
func (h *hasher) check(r types.Resource) error {
	if !h.valid[r] {
		v, ok := r.(validator)
		if !ok {
			return fmt.Errorf("%T cannot be validated", r)
		}
		if err := v.ValidateAll(); err != nil {
			return err
		}
		h.valid[r] = true
	}
	_, err := h.sum(r)
	return err
}

// referencedSecrets is envoy.ReferencedSecrets with each resource's
// references looked up once (h may be nil: no cache).
func (h *hasher) referencedSecrets(s envoy.Set) ([]string, error) {
	if h == nil {
		return envoy.ReferencedSecrets(s)
	}
	return envoy.ReferencedSecretsWith(s, func(r types.Resource) ([]string, error) {
		if refs, ok := h.refs[r]; ok {
			return refs, nil
		}
		refs, err := envoy.SecretRefs(r)
		if err == nil {
			h.refs[r] = refs
		}
		return refs, err
	})
}

// retain forgets every resource not in live.
func (h *hasher) retain(live map[types.Resource]bool) {
	for r := range h.sums {
		if !live[r] {
			delete(h.sums, r)
		}
	}
	for r := range h.valid {
		if !live[r] {
			delete(h.valid, r)
		}
	}
	for r := range h.refs {
		if !live[r] {
			delete(h.refs, r)
		}
	}
}

// sum is the sha256 of r's content (see digest).
func (h *hasher) sum(r types.Resource) ([sha256.Size]byte, error) {
	if s, ok := h.sums[r]; ok {
		return s, nil
	}
	d := sha256.New()
	if err := digest(d, r.ProtoReflect()); err != nil {
		return [sha256.Size]byte{}, err
	}
	var s [sha256.Size]byte
	d.Sum(s[:0])
	h.sums[r] = s
	return s, nil
}

// digest writes an unambiguous encoding of m's content to w: each set
// field in field-number order as its number, its kind and its value, with
// lengths before strings, bytes, lists and maps (keys sorted), and nested
// messages between markers. It reads bytes fields in place: hashing a
// trust Secret holding 46 MB of CRLs costs no 46 MB marshal buffer, which
// deterministic.Marshal would allocate on every publish. Any values are
// canonical bytes already (see canonicalize).
func digest(w io.Writer, m protoreflect.Message) error {
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	slices.SortFunc(fields, func(a, b protoreflect.FieldDescriptor) int { return int(a.Number()) - int(b.Number()) })
	var buf [binary.MaxVarintLen64]byte
	num := func(n uint64) { w.Write(binary.AppendUvarint(buf[:0], n)) }
	var err error
	value := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch fd.Kind() {
		case protoreflect.MessageKind, protoreflect.GroupKind:
			w.Write([]byte{'{'})
			if e := digest(w, v.Message()); e != nil && err == nil {
				err = e
			}
			w.Write([]byte{'}'})
		case protoreflect.BytesKind:
			r, e := rope.Lookup(v.Bytes())
			switch {
			case e != nil:
				if err == nil {
					err = e
				}
			case r != nil:
				// A rope's token: its length with the top bit set, which
				// no plain bytes length has, then the digest of its chunks
				// (the SHA-256s admission took), not 46 MB hashed again.
				num(1<<63 | uint64(r.Len()))
				d := r.Digest()
				w.Write(d[:])
			default:
				num(uint64(len(v.Bytes())))
				w.Write(v.Bytes())
			}
		case protoreflect.StringKind:
			num(uint64(len(v.String())))
			io.WriteString(w, v.String())
		case protoreflect.BoolKind:
			if v.Bool() {
				num(1)
			} else {
				num(0)
			}
		case protoreflect.EnumKind:
			num(uint64(v.Enum()))
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			num(uint64(v.Int()))
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			num(v.Uint())
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			num(math.Float64bits(v.Float()))
		default:
			if err == nil {
				err = fmt.Errorf("field %s: kind %v cannot be hashed", fd.FullName(), fd.Kind())
			}
		}
	}
	for _, fd := range fields {
		v := m.Get(fd)
		num(uint64(fd.Number()))
		num(uint64(fd.Kind()))
		switch {
		case fd.IsList():
			l := v.List()
			num(uint64(l.Len()))
			for i := range l.Len() {
				value(fd, l.Get(i))
			}
		case fd.IsMap():
			mp := v.Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			num(uint64(len(keys)))
			for _, k := range keys {
				value(fd.MapKey(), k.Value())
				value(fd.MapValue(), mp.Get(k))
			}
		default:
			value(fd, v)
		}
	}
	if u := m.GetUnknown(); len(u) > 0 {
		num(0) // no field has number 0
		num(uint64(len(u)))
		w.Write(u)
	}
	return err
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
