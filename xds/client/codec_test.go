package client

import (
	"bytes"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestRecvCodecAliasesResources: a large DiscoveryResponse decodes to what
// proto.Unmarshal gives, its resources' values pointing into the received
// buffer.
func TestRecvCodecAliasesResources(t *testing.T) {
	big := bytes.Repeat([]byte("crl!"), aliasMinBytes/2)
	want := &discoveryv3.DiscoveryResponse{
		VersionInfo: "v1", TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", Nonce: "7",
		Resources:    []*anypb.Any{{TypeUrl: "t/a", Value: big}, {TypeUrl: "t/b", Value: []byte("small")}, {TypeUrl: "t/c"}},
		ControlPlane: &corev3.ControlPlane{Identifier: "cp"},
	}
	wire, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	// Frames arrive as several buffers.
	data := mem.BufferSlice{mem.SliceBuffer(wire[:1000]), mem.SliceBuffer(wire[1000:])}
	var got discoveryv3.DiscoveryResponse
	if err := newRecvCodec().Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, want) {
		t.Fatalf("decoded %v, want %v", &got, want)
	}
	if v := got.GetResources()[0].GetValue(); cap(v) != len(v) {
		t.Error("a resource value can be appended to in place")
	}
	// Something unexpected falls back to the stock decoding.
	odd := protowire.AppendTag(append([]byte{}, wire...), 2, protowire.BytesType)
	odd = protowire.AppendBytes(odd, protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 1))
	var got2, want2 discoveryv3.DiscoveryResponse
	if err := newRecvCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(odd)}, &got2); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(odd, &want2); err != nil || !proto.Equal(&got2, &want2) {
		t.Errorf("fallback: %v, want %v (%v)", &got2, &want2, err)
	}
}

// TestHandleDropsEncodedResources: once a response is handled, its encoded
// resources are dropped, so that whoever still holds the response (the
// receiving goroutine holds its last one) does not keep them alive.
func TestHandleDropsEncodedResources(t *testing.T) {
	var types [numKinds]typeStream
	types[kCluster].subscribed = true
	_, s, calls := newFuzzStream(t, nil, types)
	a, err := anypb.New(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}})
	if err != nil {
		t.Fatal(err)
	}
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: resource.ClusterType, VersionInfo: "1", Nonce: "n", Resources: []*anypb.Any{a}}
	if err := s.handle(resp); err != nil {
		t.Fatal(err)
	}
	if len(calls.updates)+len(calls.nacks) == 0 {
		t.Fatal("the response was neither ACKed nor NACKed")
	}
	if resp.Resources != nil {
		t.Error("a handled response still holds its encoded resources")
	}
}
