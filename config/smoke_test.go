package config_test

import (
	"testing"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

func TestSmoke(t *testing.T) {
	s := pkitest.NewStandard(t, "127.0.0.1:8443", "127.0.0.1:9000")
	m, err := config.Load(s.Certs, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Problems {
		t.Logf("problem %q: %v", p.Listener, p)
	}
	for _, p := range m.Warnings {
		t.Logf("warning %q: %v", p.Listener, p)
	}
	t.Logf("%d listeners %+v", len(m.Listeners), m.Listeners[0])
}
