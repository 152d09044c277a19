package main

import "testing"

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(1, 4); got != "0.25×" {
		t.Errorf("ratio(1, 4) = %q", got)
	}
	if got := ratio(1, 0); got != "–" {
		t.Errorf("ratio(1, 0) = %q", got)
	}
}

func TestRunName(t *testing.T) {
	m := runName.FindStringSubmatch("ecdsa-p256-crl1_hs_haproxy_r3.vegeta.json")
	if m == nil || m[1] != "ecdsa-p256-crl1" || m[2] != "hs" || m[3] != "haproxy" || m[4] != "3" {
		t.Fatalf("runName match = %q", m)
	}
	if runName.MatchString("rsa-2048_life_nginx.pstat.json") {
		t.Fatal("a lifetime pstat file matched as a run")
	}
}
