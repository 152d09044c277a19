package xds

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"
)

// A trust Secret with a 1,000,000-serial CRL is 46 MB. go-control-plane
// marshals every resource of a response into an Any, once per stream and
// per push, and gRPC's codec then copies the DiscoveryResponse again: two
// transient 46 MB copies per client on top of the Secret itself, and the
// GC headroom over them. Instead, the snapshot cache holds such a resource
// as a lazyResource, whose encoding is a stub of stubLen bytes naming it;
// the server's codec (wireCodec) sends the resource's encoding in place of
// the stub, made of small runs and the resource's own bytes fields by
// reference (spliced). What goes on the wire is unchanged, byte for byte.

// lazyMinBytes is the size of a bytes field from which it is sent in
// place rather than copied, and a resource holding one is lazy.
const lazyMinBytes = 256 << 10

// stubLen is the length of a stub: stubMagic, then the handle's id.
const stubLen = 24

// stubMagic starts every stub of this process. Random, so no real
// resource encoding can be taken for a stub.
var stubMagic = func() (m [16]byte) {
	_, _ = rand.Read(m[:])
	return m
}()

// lazyHandle is the stub of one lazy resource and its spliced encoding.
// The stub is its first field: an Any whose value is the stub slice keeps
// the handle, and so the resource's bytes, alive until the response is
// sent.
type lazyHandle struct {
	stub [stubLen]byte
	// enc is replaced when an equal resource takes over the handle
	// (wireResources.snapshot): the bytes are the same, but those of the
	// resource served now are the ones to keep alive.
	enc atomic.Pointer[spliced]
}

// handles finds a live handle by id, for the codec. Entries are weak: a
// handle lives as long as a lazyResource or an encoded stub refers to it.
var handles struct {
	sync.Mutex
	byID map[uint64]weak.Pointer[lazyHandle]
	next atomic.Uint64
}

func newHandle(enc *spliced) *lazyHandle {
	id := handles.next.Add(1)
	h := &lazyHandle{}
	h.enc.Store(enc)
	copy(h.stub[:], stubMagic[:])
	binary.BigEndian.PutUint64(h.stub[16:], id)
	handles.Lock()
	if handles.byID == nil {
		handles.byID = map[uint64]weak.Pointer[lazyHandle]{}
	}
	handles.byID[id] = weak.Make(h)
	handles.Unlock()
	runtime.AddCleanup(h, func(id uint64) {
		handles.Lock()
		delete(handles.byID, id)
		handles.Unlock()
	}, id)
	return h
}

// isStub reports whether v has the form of a stub of this process.
func isStub(v []byte) bool { return len(v) == stubLen && bytes.Equal(v[:16], stubMagic[:]) }

// lookupStub returns the encoding a stub stands for; false when v is not
// a stub or its handle is gone (which cannot happen while v is alive).
func lookupStub(v []byte) (*spliced, bool) {
	if !isStub(v) {
		return nil, false
	}
	handles.Lock()
	w, ok := handles.byID[binary.BigEndian.Uint64(v[16:])]
	handles.Unlock()
	if !ok {
		return nil, false
	}
	h := w.Value()
	if h == nil || !bytes.Equal(h.stub[:], v) {
		return nil, false
	}
	return h.enc.Load(), true
}

// lazyResource is a resource as the snapshot cache holds it: named as the
// resource, encoded as its stub. It is never modified.
type lazyResource struct {
	res  types.Resource
	name string
	h    *lazyHandle
}

// newLazy wraps r when it holds a large bytes field, else returns nil.
func newLazy(r types.Resource, name string) (*lazyResource, error) {
	enc, err := splice(r, lazyMinBytes)
	if err != nil || enc == nil {
		return nil, err
	}
	return &lazyResource{res: r, name: name, h: newHandle(enc)}, nil
}

// GetName makes go-control-plane's GetResourceName see the resource's name.
func (l *lazyResource) GetName() string { return l.name }

// ProtoReflect is the resource's own, but for its encoding (lazyMethods).
func (l *lazyResource) ProtoReflect() protoreflect.Message {
	return lazyReflect{Message: l.res.ProtoReflect(), l: l}
}

type lazyReflect struct {
	protoreflect.Message
	l *lazyResource
}

func (m lazyReflect) Interface() protoreflect.ProtoMessage { return m.l }

func (m lazyReflect) ProtoMethods() *protoiface.Methods { return &lazyMethods }

var lazyMethods = protoiface.Methods{
	Flags: protoiface.SupportMarshalDeterministic,
	Marshal: func(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
		stub := in.Message.(lazyReflect).l.h.stub[:stubLen:stubLen]
		if len(in.Buf) == 0 {
			// The stub itself, not a copy: the Any that holds it keeps
			// the handle alive (lazyHandle). Its capacity ends with it,
			// so an append copies instead of writing into the handle.
			return protoiface.MarshalOutput{Buf: stub}, nil
		}
		return protoiface.MarshalOutput{Buf: append(in.Buf, stub...)}, nil
	},
	CheckInitialized: func(in protoiface.CheckInitializedInput) (protoiface.CheckInitializedOutput, error) {
		return protoiface.CheckInitializedOutput{}, proto.CheckInitialized(in.Message.(lazyReflect).l.res)
	},
}
