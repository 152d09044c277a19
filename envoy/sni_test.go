package envoy

import (
	"fmt"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/certplane/certplane/config"
)

func TestPlanChains(t *testing.T) {
	cases := []struct {
		name        string
		l           config.Listener
		sans        [][]string
		want        string
		withDefault bool
	}{{
		name: "one certificate, any name",
		l:    config.Listener{Certificates: []string{"a"}},
		sans: [][]string{nil},
		want: "a:[]",
	}, {
		name: "server_names go to the certificate covering them",
		l: config.Listener{Certificates: []string{"a", "b"},
			ServerNames: []string{"x.b.example", "b.example", "*.b.example", "other.example"}},
		sans: [][]string{{"a.example"}, {"b.example", "*.b.example"}},
		want: "a:[other.example] b:[x.b.example b.example *.b.example]",
	}, {
		name: "a certificate wildcard covers one label only",
		l:    config.Listener{Certificates: []string{"a", "b"}, ServerNames: []string{"x.y.b.example"}},
		sans: [][]string{{"a.example"}, {"*.b.example"}},
		want: "a:[x.y.b.example]",
	}, {
		name: "the address default leaves claimed names to its peers",
		l: config.Listener{Certificates: []string{"a", "b"}, SharedAddress: true,
			PeerServerNames: []string{"*.partners.example", "admin.example"}},
		sans:        [][]string{{"www.example", "admin.example", "*.example"}, {"api.partners.example", "*.x.partners.example"}},
		want:        "a:[www.example *.example]",
		withDefault: true,
	}, {
		name: "the address default whose every SAN is claimed",
		l: config.Listener{Certificates: []string{"a", "b"}, SharedAddress: true,
			PeerServerNames: []string{"*.example"}},
		sans: [][]string{{"www.example"}, {"api.example"}},
		want: "a:[]",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plans, def := planChains(&c.l, c.sans)
			var got []string
			for _, p := range plans {
				got = append(got, fmt.Sprintf("%s:%v", p.cert, p.names))
			}
			if strings.Join(got, " ") != c.want || def != c.withDefault {
				t.Errorf("got %q default %v, want %q default %v", strings.Join(got, " "), def, c.want, c.withDefault)
			}
		})
	}
}

func TestMergeListenersRefuses(t *testing.T) {
	part := func(chain string, names ...string) *listenerv3.Listener {
		fc := &listenerv3.FilterChain{Name: chain}
		if len(names) > 0 {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: names}
		}
		return &listenerv3.Listener{Name: "shared/0.0.0.0:8443", FilterChains: []*listenerv3.FilterChain{fc}}
	}
	for _, c := range []struct {
		name  string
		parts []*listenerv3.Listener
		want  string
	}{
		{"same server name", []*listenerv3.Listener{part("a/a", "x.example"), part("b/b", "x.example")}, `server name "x.example" is matched by chains "a/a" and "b/b"`},
		{"two defaults", []*listenerv3.Listener{part("a/a"), part("b/b")}, `chains "a/a" and "b/b" both take any server name`},
		{"same chain name", []*listenerv3.Listener{part("a/a", "x.example"), part("a/a", "y.example")}, `two filter chains are named "a/a"`},
		{"different frames", []*listenerv3.Listener{part("a/a", "x.example"), {Name: "shared/0.0.0.0:8443", StatPrefix: "x"}}, "differ beyond their filter chains"},
	} {
		if _, err := MergeListeners(c.parts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
	got, err := MergeListeners(part("b/b"), part("a/a", "x.example"))
	if err != nil || len(got.GetFilterChains()) != 2 || got.GetFilterChains()[0].GetName() != "a/a" {
		t.Errorf("merge: %v %v, want chains a/a then b/b", got, err)
	}
}
