package client

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Digest identifies a Secret's content: equal digests, equal Secrets.
type Digest [sha256.Size]byte

// SecretDigest is the SHA-256 of a Secret's deterministic encoding, with its
// validation_context's inline CRL hashed in place rather than encoded (no
// 46 MB copy for a 1,000,000-serial CRL). A Secret sent again unchanged has
// the same digest; any other change gives another.
func SecretDigest(s *tlsv3.Secret) Digest {
	h := sha256.New()
	rest, crl := splitCRL(s)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rest)
	if err != nil {
		// Unencodable: a digest no other Secret has, so it is never
		// mistaken for an unchanged one.
		b = []byte("unencodable:" + err.Error())
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
	switch v := crl.GetSpecifier().(type) {
	case nil:
		h.Write([]byte{0})
	case *corev3.DataSource_InlineBytes:
		h.Write([]byte{1})
		h.Write(v.InlineBytes)
	case *corev3.DataSource_InlineString:
		h.Write([]byte{2})
		h.Write([]byte(v.InlineString))
	default:
		c, err := proto.MarshalOptions{Deterministic: true}.Marshal(crl)
		if err != nil {
			c = []byte("unencodable:" + err.Error())
		}
		h.Write([]byte{3})
		h.Write(c)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// ReleaseSecret is s without its validation_context's crl: the CRL is the
// one field that can be tens of MB, and a consumer that has indexed it
// (the proxy) needs only its digest. The copy is shallow: it shares the
// other fields with s, which neither is to mutate. s itself is returned
// when it carries no CRL.
func ReleaseSecret(s *tlsv3.Secret) *tlsv3.Secret {
	rest, crl := splitCRL(s)
	if crl == nil {
		return s
	}
	return rest
}

// splitCRL returns s without its validation_context's crl (a shallow
// copy) and that crl; s and nil when it has none.
func splitCRL(s *tlsv3.Secret) (*tlsv3.Secret, *corev3.DataSource) {
	vc := s.GetValidationContext()
	if vc.GetCrl() == nil {
		return s, nil
	}
	vcr := vc.ProtoReflect()
	vc2 := shallowWithout(vcr, vcr.Descriptor().Fields().ByName("crl"))
	sr := s.ProtoReflect()
	vcField := sr.Descriptor().Fields().ByName("validation_context")
	s2 := shallowWithout(sr, vcField)
	s2.Set(vcField, protoreflect.ValueOfMessage(vc2))
	return s2.Interface().(*tlsv3.Secret), vc.GetCrl()
}

// shallowWithout copies m's populated fields but skip, sharing their values.
func shallowWithout(m protoreflect.Message, skip protoreflect.FieldDescriptor) protoreflect.Message {
	out := m.New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd != skip {
			out.Set(fd, v)
		}
		return true
	})
	if u := m.GetUnknown(); len(u) > 0 {
		out.SetUnknown(u)
	}
	return out
}

// releaseSecrets replaces the view's Secrets by their released form
// (ReleaseSecret) in fresh maps, for Config.ReleaseSecrets once the consumer
// has committed them: views already handed out keep theirs.
func releaseSecrets(r Resources) Resources {
	var secrets map[string]*tlsv3.Secret
	for name, s := range r.Secrets {
		if r.ReleasedSecrets[name] {
			continue
		}
		rs := ReleaseSecret(s)
		if rs == s {
			continue
		}
		if secrets == nil {
			secrets = maps.Clone(r.Secrets)
			released := make(map[string]bool, len(r.Secrets))
			maps.Copy(released, r.ReleasedSecrets)
			r.ReleasedSecrets = released
		}
		secrets[name] = rs
		r.ReleasedSecrets[name] = true
	}
	if secrets != nil {
		r.Secrets = secrets
	}
	return r
}
