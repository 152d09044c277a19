package buildinfo

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestShort(t *testing.T) {
	cases := []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.3", Commit: "0123456789abcdef"}, "v1.2.3"},
		{Info{Version: "devel", Commit: "0123456789abcdef"}, "devel+0123456789ab"},
		{Info{Version: "devel", Commit: "0123456789abcdef", Modified: true}, "devel+0123456789ab-dirty"},
		{Info{Version: "devel"}, "devel"},
	}
	for _, c := range cases {
		if got := c.in.Short(); got != c.want {
			t.Errorf("%+v.Short() = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one certplane_build_info series", mfs)
	}
	labels := map[string]string{}
	for _, l := range mfs[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["goversion"] != runtime.Version() || labels["version"] == "" {
		t.Errorf("labels = %v, want goversion %s and a version", labels, runtime.Version())
	}
	if v := mfs[0].GetMetric()[0].GetGauge().GetValue(); mfs[0].GetName() != "certplane_build_info" || v != 1 {
		t.Errorf("%s = %v, want certplane_build_info = 1", mfs[0].GetName(), v)
	}
}
