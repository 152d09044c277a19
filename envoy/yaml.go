package envoy

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/certplane/certplane/internal/rope"
)

// The YAML helpers turn protos into the YAML Envoy reads (proto field
// names, "@type" on Any) and back. protojson does the proto side, so the
// output is exactly what Envoy's own JSON/YAML loader accepts; YAML is only
// the surface. Keys come out in protojson's field order, maps sorted.

// ToYAMLValue converts m to a YAML node.
func ToYAMLValue(m proto.Message) (*yaml.Node, error) {
	// A large CRL bundle is a rope's token in the Secret: the YAML holds
	// the CRLs themselves.
	full, err := rope.Materialize(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	m = full
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("re-read %s as YAML: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	n := doc.Content[0]
	blockStyle(n)
	return n, nil
}

// blockStyle drops the flow style and quoting that parsing JSON leaves, so
// the encoder writes ordinary block YAML and quotes only where needed.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// MarshalYAML renders m as one YAML document.
func MarshalYAML(m proto.Message) ([]byte, error) {
	n, err := ToYAMLValue(m)
	if err != nil {
		return nil, err
	}
	return encodeYAML(n)
}

// MarshalYAMLList renders ms, in order, as one YAML sequence.
func MarshalYAMLList[M proto.Message](ms []M) ([]byte, error) {
	seq, err := YAMLSequence(ms)
	if err != nil {
		return nil, err
	}
	return encodeYAML(seq)
}

// YAMLSequence converts ms, in order, to a YAML sequence node.
func YAMLSequence[M proto.Message](ms []M) (*yaml.Node, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, m := range ms {
		n, err := ToYAMLValue(m)
		if err != nil {
			return nil, err
		}
		seq.Content = append(seq.Content, n)
	}
	return seq, nil
}

func encodeYAML(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalYAML reads Envoy-style YAML into m, strictly: an unknown field
// is an error, as it is for Envoy.
func UnmarshalYAML(b []byte, m proto.Message) error {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("parse YAML: %w", err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("convert YAML to JSON: %w", err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return fmt.Errorf("decode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}
