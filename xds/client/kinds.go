package client

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protopath"
	"google.golang.org/protobuf/reflect/protorange"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// kind is one of the five resource types the client subscribes to. The order
// is the order of the initial requests on a new stream: the wildcard types
// first, as Envoy does, then the by-name types they reference.
type kind int

const (
	kListener kind = iota
	kCluster
	kRoute
	kEndpoint
	kSecret
	numKinds
)

// kindInfo describes how to handle one resource type.
type kindInfo struct {
	url string
	// wildcard types (LDS, CDS) are requested with an empty name list and
	// every response is their complete state of the world. The others are
	// requested by name and a response may carry only some of them.
	wildcard bool
	newMsg   func() proto.Message
	name     func(proto.Message) string
}

func (k kind) info() kindInfo {
	switch k {
	case kListener:
		return kindInfo{resource.ListenerType, true,
			func() proto.Message { return new(listenerv3.Listener) },
			func(m proto.Message) string { return m.(*listenerv3.Listener).GetName() }}
	case kCluster:
		return kindInfo{resource.ClusterType, true,
			func() proto.Message { return new(clusterv3.Cluster) },
			func(m proto.Message) string { return m.(*clusterv3.Cluster).GetName() }}
	case kRoute:
		return kindInfo{resource.RouteType, false,
			func() proto.Message { return new(routev3.RouteConfiguration) },
			func(m proto.Message) string { return m.(*routev3.RouteConfiguration).GetName() }}
	case kEndpoint:
		return kindInfo{resource.EndpointType, false,
			func() proto.Message { return new(endpointv3.ClusterLoadAssignment) },
			func(m proto.Message) string { return m.(*endpointv3.ClusterLoadAssignment).GetClusterName() }}
	case kSecret:
		return kindInfo{resource.SecretType, false,
			func() proto.Message { return new(tlsv3.Secret) },
			func(m proto.Message) string { return m.(*tlsv3.Secret).GetName() }}
	}
	panic(fmt.Sprintf("xds client: unknown kind %d", int(k)))
}

// String is the short xDS name, used in logs.
func (k kind) String() string {
	return [...]string{"LDS", "CDS", "RDS", "EDS", "SDS"}[k]
}

func kindOf(typeURL string) (kind, bool) {
	for k := range numKinds {
		if k.info().url == typeURL {
			return k, true
		}
	}
	return 0, false
}

// resourceWrapperURL is the type of envoy.service.discovery.v3.Resource, which
// a server uses to attach a TTL to a resource in a SotW response.
const resourceWrapperURL = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// named is one decoded resource.
type named struct {
	name string
	msg  proto.Message
}

// decode turns a response's Any resources into typed messages, each passed
// through its generated ValidateAll and checked for unknown fields. Any defect
// rejects the whole response, as Envoy does.
func decode(k kind, anys []*anypb.Any) ([]named, error) {
	info := k.info()
	out := make([]named, 0, len(anys))
	seen := make(map[string]bool, len(anys))
	for i, a := range anys {
		if a.GetTypeUrl() == resourceWrapperURL {
			w := new(discoveryv3.Resource)
			if err := a.UnmarshalTo(w); err != nil {
				return nil, fmt.Errorf("resource %d: decode Resource wrapper: %w", i, err)
			}
			if w.GetResource() == nil {
				return nil, fmt.Errorf("resource %d: Resource wrapper %q carries no resource (TTL heartbeats are not supported)", i, w.GetName())
			}
			a = w.GetResource()
		}
		if a.GetTypeUrl() != info.url {
			return nil, fmt.Errorf("resource %d has type %q in a %s response", i, a.GetTypeUrl(), info.url)
		}
		m := info.newMsg()
		if err := proto.Unmarshal(a.GetValue(), m); err != nil {
			return nil, fmt.Errorf("resource %d: decode %s: %w", i, info.url, err)
		}
		name := info.name(m)
		if name == "" {
			return nil, fmt.Errorf("resource %d: %s has no name", i, k.resourceNoun())
		}
		if seen[name] {
			return nil, fmt.Errorf("duplicate %s %q", k.resourceNoun(), name)
		}
		seen[name] = true
		if err := checkMessage(m); err != nil {
			return nil, fmt.Errorf("%s %q: %w", k.resourceNoun(), name, err)
		}
		out = append(out, named{name, m})
	}
	return out, nil
}

func (k kind) resourceNoun() string {
	return [...]string{"listener", "cluster", "route configuration", "cluster load assignment", "secret"}[k]
}

// checkMessage applies the proto's validation rules (as Envoy does on every
// xDS resource) and refuses unknown fields: a field this build cannot even
// name is a field the proxy cannot honour, and it must not be ignored in
// silence.
func checkMessage(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("invalid: %w", err)
		}
	}
	return rejectUnknownFields(m)
}

func rejectUnknownFields(m proto.Message) error {
	var found error
	if err := protorange.Range(m.ProtoReflect(), func(p protopath.Values) error {
		msg, ok := p.Index(-1).Value.Interface().(protoreflect.Message)
		if !ok || len(msg.GetUnknown()) == 0 {
			return nil
		}
		num, _, _ := protowire.ConsumeTag(msg.GetUnknown())
		// protorange expands every Any whose type this binary links, so the
		// check covers typed configs too; the path says where.
		where := string(msg.Descriptor().FullName())
		if last := p.Path.Index(-1); len(p.Path) > 1 && last.Kind() == protopath.AnyExpandStep {
			where = p.Path[1:].String()
		} else if len(p.Path) > 1 {
			where = fmt.Sprintf("%s (%s)", p.Path[1:].String(), where)
		}
		found = fmt.Errorf("unknown field %d in %s", num, where)
		return protorange.Terminate
	}); err != nil {
		return err
	}
	return found
}

// sortedNames returns the keys of set, sorted, so requests are deterministic.
func sortedNames(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
