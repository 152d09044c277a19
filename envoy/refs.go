package envoy

import (
	"fmt"
	"sort"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// ReferencedSecrets returns the sorted SDS names referenced by the Listeners
// and Clusters in s: every SdsSecretConfig anywhere in them, inside typed
// configs included. xds checks each exists before publishing, because
// go-control-plane's Consistent does not look at secrets. An Any of a type
// not linked into the binary is an error: a reference there would be missed.
func ReferencedSecrets(s Set) ([]string, error) { return ReferencedSecretsWith(s, SecretRefs) }

// ReferencedSecretsWith is ReferencedSecrets with refs giving the names
// one resource references: a caller that keeps resources across snapshots
// can look each up once.
func ReferencedSecretsWith(s Set, refs func(types.Resource) ([]string, error)) ([]string, error) {
	seen := map[string]bool{}
	for _, t := range []string{resource.ListenerType, resource.ClusterType} {
		for _, name := range s.Names(t) {
			names, err := refs(s[t][name])
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", shortType(t), name, err)
			}
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// SecretRefs returns the SDS names r references, anywhere in it, typed
// configs included, in the order found (with repeats).
func SecretRefs(r types.Resource) ([]string, error) {
	var out []string
	err := walk(r.ProtoReflect(), func(m protoreflect.Message) {
		if ref, ok := m.Interface().(*tlsv3.SdsSecretConfig); ok {
			out = append(out, ref.GetName())
		}
	})
	return out, err
}

// walk calls visit on m and every message below it, unpacking Any values.
func walk(m protoreflect.Message, visit func(protoreflect.Message)) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", a.GetTypeUrl(), err)
		}
		return walk(inner.ProtoReflect(), visit)
	}
	visit(m)
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walk(l.Get(i).Message(), visit)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walk(mv.Message(), visit)
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = walk(v.Message(), visit)
		}
		return err == nil
	})
	return err
}
