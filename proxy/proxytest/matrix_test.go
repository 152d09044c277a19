package proxytest

import (
	"fmt"
	"testing"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// TestMatrixConfigLoads: the matrix written as a certplane config loads
// with every listener valid, so a control plane serves all 27 cases.
func TestMatrixConfigLoads(t *testing.T) {
	m := NewMatrix(t)
	if len(m.Cases) != 27 {
		t.Fatalf("%d cases, want 27", len(m.Cases))
	}
	tr := pkitest.NewTree(t)
	port := 20000
	m.WriteTree(tr, func(string) string { port++; return fmt.Sprintf("127.0.0.1:%d", port) }, "127.0.0.1:9")
	model, err := config.Load(tr.Certs, tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range model.Problems {
		t.Errorf("problem: %s: %v", p.File, p.Err)
	}
	for _, w := range model.Warnings {
		t.Logf("warning: %s: %v", w.File, w.Err)
	}
	if len(model.Listeners) != len(m.Cases) {
		t.Fatalf("%d listeners loaded, want %d", len(model.Listeners), len(m.Cases))
	}
}
