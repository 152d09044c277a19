package xds

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/certplane/certplane/internal/rope"
)

// spliced is the wire encoding of a message as pieces: small encoded runs
// and, in place, the message's own large bytes fields, never copied. The
// pieces joined are byte for byte proto.MarshalOptions{Deterministic:
// true}.Marshal of the message (TestSpliceEqualsMarshal holds it to that).
type spliced struct {
	pieces [][]byte
	size   int
	run    []byte // the encoded run being built, not yet in pieces
}

// bigField is a tree of the large bytes fields of a message, by field
// number: a leaf holds the bytes, a node the fields of a singular
// submessage.
type bigField struct {
	bytes []byte
	rope  *rope.Rope // set for a token: its chunks are the field's bytes
	sub   map[protowire.Number]*bigField
}

// splice encodes m with every singular bytes field of at least minBytes
// kept in place, and every rope token replaced by the rope's chunks in
// place, or returns nil when m has neither. Lists and maps are encoded as
// they are (a large bytes field inside one is copied).
func splice(m proto.Message, minBytes int) (*spliced, error) {
	ropes := false
	tree, err := bigFields(m.ProtoReflect(), minBytes, &ropes)
	if err != nil {
		return nil, fmt.Errorf("splice %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if tree == nil {
		return nil, nil
	}
	// The message with each large field cut to one byte, so that it is
	// still present on the wire (proto3 omits empty bytes), shares every
	// other value with m: nothing large is copied, m is not touched.
	small, err := proto.MarshalOptions{Deterministic: true}.Marshal(stubbed(m.ProtoReflect(), tree).Interface())
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	s := &spliced{}
	if err := s.rebuild(small, tree); err != nil {
		return nil, fmt.Errorf("splice %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	s.flush()
	// proto.Size counts a token, not its rope: spliceRopes tests hold
	// ropes to proto.Marshal of the materialized message.
	if want := proto.Size(m); !ropes && s.size != want {
		return nil, fmt.Errorf("splice %s: %d bytes, want %d", m.ProtoReflect().Descriptor().FullName(), s.size, want)
	}
	return s, nil
}

// bigFields finds the singular bytes fields of m, at any depth of
// singular submessages, holding at least minBytes.
func bigFields(m protoreflect.Message, minBytes int, ropes *bool) (*bigField, error) {
	var t *bigField
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() || fd.IsMap() {
			return true
		}
		var f *bigField
		switch fd.Kind() {
		case protoreflect.BytesKind:
			r, e := rope.Lookup(v.Bytes())
			switch {
			case e != nil:
				err = e
				return false
			case r != nil:
				f = &bigField{rope: r}
				*ropes = true
			case len(v.Bytes()) >= minBytes:
				f = &bigField{bytes: v.Bytes()}
			}
		case protoreflect.MessageKind:
			if f, err = bigFields(v.Message(), minBytes, ropes); err != nil {
				return false
			}
		}
		if f != nil {
			if t == nil {
				t = &bigField{sub: map[protowire.Number]*bigField{}}
			}
			t.sub[fd.Number()] = f
		}
		return true
	})
	return t, err
}

// stubbed is a shallow copy of m along t's paths with each large field
// set to one byte; every other value is shared with m.
func stubbed(m protoreflect.Message, t *bigField) protoreflect.Message {
	out := m.Type().New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch f := t.sub[fd.Number()]; {
		case f == nil:
			out.Set(fd, v)
		case f.sub == nil:
			out.Set(fd, protoreflect.ValueOfBytes([]byte{0}))
		default:
			out.Set(fd, protoreflect.ValueOfMessage(stubbed(v.Message(), f)))
		}
		return true
	})
	if u := m.GetUnknown(); len(u) > 0 {
		out.SetUnknown(u)
	}
	return out
}

// rebuild appends the encoding of the stubbed message b with t's fields
// restored: a length prefix changes with what it covers, everything else
// is b's bytes as they are.
func (s *spliced) rebuild(b []byte, t *bigField) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		f := t.sub[num]
		if f == nil {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			s.addRun(b[:n+m])
			b = b[n+m:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: wire type %d, want bytes", num, typ)
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		switch {
		case f.rope != nil:
			s.addRun(protowire.AppendVarint(protowire.AppendTag(nil, num, typ), uint64(f.rope.Len())))
			for _, c := range f.rope.Chunks() {
				s.addRef(c)
			}
		case f.sub == nil:
			s.addRun(protowire.AppendVarint(protowire.AppendTag(nil, num, typ), uint64(len(f.bytes))))
			s.addRef(f.bytes)
		default:
			var inner spliced
			if err := inner.rebuild(v, f); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			s.addRun(protowire.AppendVarint(protowire.AppendTag(nil, num, typ), uint64(inner.size)))
			s.addSpliced(&inner)
		}
		delete(t.sub, num) // a singular field is encoded once
		b = b[n+m:]
	}
	if len(t.sub) > 0 {
		return errors.New("a large field is missing from the encoding")
	}
	return nil
}

// addRun appends an encoded run: runs are merged into one owned buffer
// until a field kept in place comes.
func (s *spliced) addRun(p []byte) {
	s.run = append(s.run, p...)
	s.size += len(p)
}

// addRef appends b by reference.
func (s *spliced) addRef(b []byte) {
	s.flush()
	if len(b) > 0 {
		s.pieces = append(s.pieces, b)
		s.size += len(b)
	}
}

// addSpliced appends the pieces of inner.
func (s *spliced) addSpliced(inner *spliced) {
	inner.flush()
	s.flush()
	s.pieces = append(s.pieces, inner.pieces...)
	s.size += inner.size
}

func (s *spliced) flush() {
	if len(s.run) > 0 {
		s.pieces = append(s.pieces, s.run)
		s.run = nil
	}
}
