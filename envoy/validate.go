package envoy

import (
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

type validator interface{ ValidateAll() error }

// Validate runs ValidateAll on m and on every message inside it, including
// the contents of each Any (typed_config, transport sockets): the generated
// ValidateAll stops at an Any, so a bad HTTP connection manager inside a
// valid Listener would otherwise pass.
func Validate(m proto.Message) error {
	var errs []error
	if err := walk(m.ProtoReflect(), func(msg protoreflect.Message) {
		v, ok := msg.Interface().(validator)
		if !ok {
			return
		}
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", msg.Descriptor().FullName(), err))
		}
	}); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// DeprecatedFields lists the deprecated fields and enum values set anywhere
// in m, Any contents included, as "message.field" or "enum.VALUE". Envoy
// warns on each and may drop them in a later release.
func DeprecatedFields(m proto.Message) ([]string, error) {
	seen := map[string]bool{}
	err := walk(m.ProtoReflect(), func(msg protoreflect.Message) {
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if isDeprecated(fd.Options()) {
				seen[string(fd.FullName())] = true
			}
			if fd.Kind() == protoreflect.EnumKind {
				vals := []protoreflect.EnumNumber{}
				if fd.IsList() {
					for i := 0; i < v.List().Len(); i++ {
						vals = append(vals, v.List().Get(i).Enum())
					}
				} else if !fd.IsMap() {
					vals = append(vals, v.Enum())
				}
				for _, n := range vals {
					if ev := fd.Enum().Values().ByNumber(n); ev != nil && isDeprecatedValue(ev.Options()) {
						seen[string(ev.FullName())] = true
					}
				}
			}
			return true
		})
	})
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, err
}

func isDeprecated(o protoreflect.ProtoMessage) bool {
	fo, ok := o.(*descriptorpb.FieldOptions)
	return ok && fo.GetDeprecated()
}

func isDeprecatedValue(o protoreflect.ProtoMessage) bool {
	eo, ok := o.(*descriptorpb.EnumValueOptions)
	return ok && eo.GetDeprecated()
}
