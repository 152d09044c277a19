// Package rope holds a trust store's CRL bundle as the PEM of each CRL,
// in order, without joining them: a store holding a 1,000,000-serial CRL
// of one CA (46 MB) and a small CRL of another gets, when the small one
// changes, a new bundle that shares the big CRL's bytes instead of a new
// 46 MB copy.
//
// A Secret's inline_bytes must be one []byte, so a rope stands in the
// Secret as its token: a short value naming the rope and its content. The
// token never leaves the process: xds sends the rope's chunks in its place
// (spliced, byte-identical to marshalling the joined bytes), and whatever
// else needs the real bytes takes them from Materialize. A token whose
// rope cannot be found is an error, never sent (fail closed).
package rope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"weak"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MinBytes is the size from which a bundle of several chunks is put in a
// Secret as a token; a smaller one is joined (a cheap copy), so small
// stores are served as they always were.
const MinBytes = 256 << 10

// TokenLen is the length of a token: magic, then the rope's digest.
const TokenLen = 16 + sha256.Size

// magic starts every token of this process. Random, so no real CA or CRL
// bytes can be taken for a token.
var magic = func() (m [16]byte) {
	_, _ = rand.Read(m[:])
	return m
}()

// Rope is an immutable sequence of byte chunks. Its bytes are never
// modified, nor are its chunks'.
type Rope struct {
	token  [TokenLen]byte
	chunks [][]byte
	size   int
}

// Chunk is one piece of a rope and the SHA-256 that identifies its
// content: for a CRL, the SHA-256 of its DER, which its PEM (the chunk,
// pemder's canonical encoding of it) is a function of.
type Chunk struct {
	Bytes  []byte
	SHA256 [sha256.Size]byte
}

// registry finds a live rope by its digest. Two ropes of the same digest
// hold the same bytes, so either serves for the other.
var registry struct {
	sync.Mutex
	byDigest map[[sha256.Size]byte]weak.Pointer[Rope]
}

// New is the rope of chunks, in order; nil when they are all empty. The
// digest is taken over the chunks' lengths and SHA-256s, not their bytes:
// callers vouch that equal SHA-256s mean equal bytes.
func New(chunks []Chunk) *Rope {
	d := sha256.New()
	d.Write([]byte("certplane rope v1\x00"))
	r := &Rope{}
	var buf [binary.MaxVarintLen64]byte
	for _, c := range chunks {
		if len(c.Bytes) == 0 {
			continue
		}
		d.Write(binary.AppendUvarint(buf[:0], uint64(len(c.Bytes))))
		d.Write(c.SHA256[:])
		r.chunks = append(r.chunks, c.Bytes[:len(c.Bytes):len(c.Bytes)])
		r.size += len(c.Bytes)
	}
	if r.size == 0 {
		return nil
	}
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	copy(r.token[:], magic[:])
	copy(r.token[16:], sum[:])
	registry.Lock()
	defer registry.Unlock()
	if registry.byDigest == nil {
		registry.byDigest = map[[sha256.Size]byte]weak.Pointer[Rope]{}
	}
	if w, ok := registry.byDigest[sum]; ok {
		if old := w.Value(); old != nil {
			return old
		}
	}
	w := weak.Make(r)
	registry.byDigest[sum] = w
	runtime.AddCleanup(r, func(sum [sha256.Size]byte) {
		registry.Lock()
		defer registry.Unlock()
		if registry.byDigest[sum] == w {
			delete(registry.byDigest, sum)
		}
	}, sum)
	return r
}

// Of is the rope of whole byte slices, each hashed here.
func Of(bs ...[]byte) *Rope {
	cs := make([]Chunk, len(bs))
	for i, b := range bs {
		cs[i] = Chunk{Bytes: b, SHA256: sha256.Sum256(b)}
	}
	return New(cs)
}

// Len is the number of bytes; 0 for a nil rope.
func (r *Rope) Len() int {
	if r == nil {
		return 0
	}
	return r.size
}

// Chunks are the rope's pieces, in order; not to be modified.
func (r *Rope) Chunks() [][]byte {
	if r == nil {
		return nil
	}
	return r.chunks
}

// Bytes joins the chunks: a copy, except for a rope of one chunk.
func (r *Rope) Bytes() []byte {
	switch len(r.Chunks()) {
	case 0:
		return nil
	case 1:
		return r.chunks[0]
	}
	return bytes.Join(r.chunks, nil)
}

// Digest identifies the rope's content (see New).
func (r *Rope) Digest() [sha256.Size]byte {
	var d [sha256.Size]byte
	if r != nil {
		copy(d[:], r.token[16:])
	}
	return d
}

// Inline is what a Secret's inline_bytes holds for the rope: its one
// chunk as it is; its token when it has several and is large; else its
// chunks joined. The token is a slice of the rope: a Secret holding it
// keeps the rope alive.
func (r *Rope) Inline() []byte {
	if len(r.Chunks()) > 1 && r.size >= MinBytes {
		return r.token[:TokenLen:TokenLen]
	}
	return r.Bytes()
}

// IsToken reports whether b has the form of a token of this process.
func IsToken(b []byte) bool { return len(b) == TokenLen && bytes.Equal(b[:16], magic[:]) }

// ErrLost is a token whose rope cannot be found: serving it would hand
// the client a Secret without its CRL, so whatever needed it fails.
var ErrLost = errors.New("a CRL bundle's bytes are gone")

// Lookup returns the rope a token stands for: nil, nil when b is not a
// token; ErrLost when it is one whose rope is gone (which cannot happen
// while the token, a slice of its rope, is alive).
func Lookup(b []byte) (*Rope, error) {
	if !IsToken(b) {
		return nil, nil
	}
	var sum [sha256.Size]byte
	copy(sum[:], b[16:])
	registry.Lock()
	w, ok := registry.byDigest[sum]
	registry.Unlock()
	if !ok {
		return nil, ErrLost
	}
	r := w.Value()
	if r == nil {
		return nil, ErrLost
	}
	return r, nil
}

// Has reports whether m holds a token (see walk).
func Has(m proto.Message) bool {
	found := false
	walk(m.ProtoReflect(), func(protoreflect.Message, protoreflect.FieldDescriptor, []byte) { found = true })
	return found
}

// Materialize returns m with each token replaced by its rope's bytes: m
// itself when it holds none, else a copy (m is not touched). It fails when
// a token's rope is gone.
func Materialize[M proto.Message](m M) (M, error) {
	if !Has(m) {
		return m, nil
	}
	out := proto.Clone(m).(M)
	type field struct {
		m  protoreflect.Message
		fd protoreflect.FieldDescriptor
		b  []byte
	}
	var fields []field // set after the walk: a message is not modified while ranged
	walk(out.ProtoReflect(), func(p protoreflect.Message, fd protoreflect.FieldDescriptor, b []byte) {
		fields = append(fields, field{p, fd, b})
	})
	for _, f := range fields {
		r, err := Lookup(f.b)
		if err != nil {
			var zero M
			return zero, err
		}
		f.m.Set(f.fd, protoreflect.ValueOfBytes(r.Bytes()))
	}
	return out, nil
}

// walk calls f on each singular bytes field holding a token, in m and its
// submessages, lists of messages included (a bootstrap's Secrets).
func walk(m protoreflect.Message, f func(protoreflect.Message, protoreflect.FieldDescriptor, []byte)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsMap() {
			return true
		}
		if fd.IsList() {
			if fd.Kind() == protoreflect.MessageKind {
				for i, l := 0, v.List(); i < l.Len(); i++ {
					walk(l.Get(i).Message(), f)
				}
			}
			return true
		}
		switch fd.Kind() {
		case protoreflect.BytesKind:
			if IsToken(v.Bytes()) {
				f(m, fd, v.Bytes())
			}
		case protoreflect.MessageKind:
			walk(v.Message(), f)
		}
		return true
	})
}
