package hardening_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki/pkitest"
)

// TestHalfWrittenCertificate rotates A's certificate the careless way: the
// new PEM is written in place, in two writes, and the watcher is made to
// see the first half. The half is a problem (A keeps its old certificate on
// both planes), the completed file is a rotation, and nothing broken is
// ever published: the observer sees exactly two versions of server/a.
func TestHalfWrittenCertificate(t *testing.T) {
	e := newEnv(t, envOptions{})
	before := e.obs.seenAHashes()
	oldA := e.serverA.Serial()
	next := e.interA.Server("localhost", pkitest.IPs("127.0.0.1"), pkitest.Key(e.serverA.Key))
	pemBytes := next.CertPEM()
	half := len(pemBytes) / 2

	f, err := os.OpenFile(e.path(crtA), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pemBytes[:half]); err != nil {
		t.Fatal(err)
	}
	e.waitServed("the half-written file reported", func() bool {
		for _, p := range e.cp.Status().Errors {
			if p.File == e.path(crtA) && strings.Contains(p.Reason, "malformed or truncated PEM block at line 1") && p.LastGoodServed {
				return true
			}
		}
		return false
	})
	if serial, err := handshake(e.portA, e.rootA, e.aliceA); err != nil || serial.Cmp(oldA) != 0 {
		t.Fatalf("A while half-written: serial %v, err %v; want the old serial %x", serial, err, oldA)
	}
	if got := e.obs.hashesA(); !equalHashes(got, e.baseline) {
		t.Errorf("A's resources changed while half-written: %v", got)
	}

	if _, err := f.Write(pemBytes[half:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the completed certificate published with no problem left", func() bool {
		s := e.obs.secretSerial("server/a")
		return s != nil && s.Cmp(next.Serial()) == 0 && len(e.cp.Status().Errors) == 0
	})
	waitFor(t, "the proxy serving the new certificate on A", func() bool {
		s, err := handshake(e.portA, e.rootA, e.aliceA)
		return err == nil && s.Cmp(next.Serial()) == 0
	})
	seen := e.obs.seenAHashes()
	if len(before) != 1 || len(seen) != 2 || !slices.Equal(seen[:1], before) {
		t.Errorf("versions of server/a published: %v (before %v); want exactly the old one then the new one", seen, before)
	}
	if p := e.prx.Status().Problems; len(p) > 0 {
		t.Errorf("the proxy refused resources: %v", p)
	}
}
