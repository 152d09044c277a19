package config_test

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certplane/certplane/config"
	"github.com/certplane/certplane/pki/pkitest"
)

// twoCAs is a trust store "s" with two independent CAs, each with its own
// CA file and CRL file, loaded by one long-running Loader.
type twoCAs struct {
	t          *testing.T
	tr         *pkitest.Tree
	a, b       *pkitest.CA
	alice, bob *pkitest.Leaf
	ld         config.Loader
}

func newTwoCAs(t *testing.T, mem *config.TrustMemory) *twoCAs {
	t.Helper()
	s := &twoCAs{t: t, tr: pkitest.NewTree(t), a: pkitest.NewCA(t, "A Root"), b: pkitest.NewCA(t, "B Root")}
	s.alice, s.bob = s.a.Client("alice"), s.b.Client("bob")
	s.tr.Trust("s", "a.pem", s.a.CertPEM())
	s.tr.Trust("s", "b.pem", s.b.CertPEM())
	s.tr.Trust("s", "a.crl", s.a.CRLPEM())
	s.tr.Trust("s", "b.crl", s.b.CRLPEM())
	s.ld = config.Loader{Trust: mem}
	return s
}

func (s *twoCAs) write(file string, data []byte) { s.tr.Trust("s", file, data) }

// load loads the tree and returns what store s serves, as "issuer CN#number"
// in order, its errors and its warnings, with the store directory as $S.
func (s *twoCAs) load() (crls, errs, warns []string) {
	s.t.Helper()
	m, err := s.ld.Load(s.tr.Certs, s.tr.Config)
	if err != nil {
		s.t.Fatal(err)
	}
	dir := filepath.Join(s.tr.Certs, "trust", "s")
	render := func(ps []config.Problem) []string {
		var out []string
		for _, p := range ps {
			if p.File == s.tr.Config {
				continue // no listener in this trust-only tree: not what these tests are about
			}
			out = append(out, strings.ReplaceAll(p.Error(), dir, "$S"))
		}
		return out
	}
	if ts := m.Trust["s"]; ts != nil {
		crls = []string{}
		for _, rl := range ts.CRLs {
			crls = append(crls, fmt.Sprintf("%s#%v", strings.TrimPrefix(rl.Issuer, "CN="), rl.Number))
		}
		// The Secret's bytes are the CRLs served, in the same order.
		if n := strings.Count(string(ts.CRLPEM.Bytes()), "BEGIN X509 CRL"); n != len(crls) {
			s.t.Errorf("CRLPEM holds %d CRLs, CRLs %d", n, len(crls))
		}
	}
	return crls, render(m.Problems), render(m.Warnings)
}

// want loads and compares the CRLs served and the problems, each problem
// matched by the parts it must hold.
func (s *twoCAs) want(crls []string, errParts, warnParts [][]string) {
	s.t.Helper()
	gotCRLs, errs, warns := s.load()
	if !slices.Equal(gotCRLs, crls) {
		s.t.Errorf("CRLs served: %q, want %q (errors %q)", gotCRLs, crls, errs)
	}
	match := func(kind string, got []string, want [][]string) {
		if len(got) != len(want) {
			s.t.Errorf("%s: %q, want %d matching %q", kind, got, len(want), want)
			return
		}
		for i, parts := range want {
			for _, p := range parts {
				if !strings.Contains(got[i], p) {
					s.t.Errorf("%s %d: %q lacks %q", kind, i, got[i], p)
				}
			}
		}
	}
	match("errors", errs, errParts)
	match("warnings", warns, warnParts)
}

func newMemory(t *testing.T, stateDir string, readOnly bool) *config.TrustMemory {
	t.Helper()
	mem, err := config.NewTrustMemory(stateDir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// TestTrustAdmissionPerFile is issue #11 item 1 at the loader: each defect
// of B's files affects B alone, A's new CRL is admitted at once, and the
// defective file is named with what is served in its place.
func TestTrustAdmissionPerFile(t *testing.T) {
	s := newTwoCAs(t, newMemory(t, "", false))
	s.want([]string{"A Root#1", "B Root#1"}, nil, nil)

	// B's CRL expires and A revokes alice: A's CRL 2 is served, and so is
	// B's expired CRL, so that B's clients fail closed at the handshake.
	s.write("b.crl", s.b.CRLPEM(pkitest.CRLExpired()))
	s.write("a.crl", s.a.CRLPEM(pkitest.CRLRevoked(s.alice)))
	s.want([]string{"A Root#2", "B Root#2"}, [][]string{{"$S/b.crl: CRL 1 (issuer CN=B Root) expired on", "an expired CRL fails closed"}}, nil)

	// Garbage over B's fresh CRL: B's last good CRL stays, A moves on.
	s.write("b.crl", s.b.CRLPEM(pkitest.CRLRevoked(s.bob)))
	s.want([]string{"A Root#2", "B Root#3"}, nil, nil)
	s.write("b.crl", []byte("garbage"))
	s.write("a.crl", s.a.CRLPEM())
	s.want([]string{"A Root#3", "B Root#3"}, [][]string{{"$S/b.crl: not a PEM or DER CRL", "the last good content of this file is still served"}}, nil)

	// B's CRL signed by another key: the last good one again.
	s.write("b.crl", s.b.Impostor().CRLPEM())
	s.want([]string{"A Root#3", "B Root#3"}, [][]string{{"$S/b.crl: CRL 1 (issuer CN=B Root) is not signed by any CA", "the last good CRLs of this file are still served"}}, nil)

	// A garbage CRL file dropped in: left out, and named.
	s.write("b.crl", s.b.CRLPEM())
	s.write("junk.crl", []byte{0x30, 0x03, 0x02, 0x01, 0x01})
	s.want([]string{"A Root#3", "B Root#4"}, [][]string{{"$S/junk.crl: not a PEM or DER CRL", "the file is left out until it is fixed"}}, nil)
	s.tr.Remove("certs/trust/s/junk.crl")

	// B's CA file garbled: B stays trusted from its last good content, so
	// its CRL still verifies.
	s.write("b.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n"))
	s.write("a.crl", s.a.CRLPEM())
	s.want([]string{"A Root#4", "B Root#4"}, [][]string{{"$S/b.pem: malformed or truncated PEM block at line 1", "the last good content of this file is still served"}}, nil)
}

// TestTrustAdmissionNeverGood: with no memory (a fresh process, or check),
// a bad file is left out; the store is refused only when that could leave
// it with no CRL at all, which would turn revocation checks off.
func TestTrustAdmissionNeverGood(t *testing.T) {
	s := newTwoCAs(t, nil)
	s.write("b.crl", []byte("garbage"))
	s.want([]string{"A Root#1"}, [][]string{{"$S/b.crl: not a PEM or DER CRL", "the file is left out until it is fixed"}}, nil)

	s.tr.Remove("certs/trust/s/a.crl")
	s.want(nil, [][]string{{"$S/b.crl: not a PEM or DER CRL", "without it the store has no CRL, and then no client would be checked for revocation: the whole store is refused until the file is fixed"}}, nil)
}

// TestCRLRollback is issue #11 item 2 at the loader: an older CRL is refused
// (by number, then by thisUpdate) and the newer one served; a deleted CRL
// file leaves the newest CRL served with a warning while its CA stays; a CA
// that leaves the store is forgotten.
func TestCRLRollback(t *testing.T) {
	s := newTwoCAs(t, newMemory(t, "", false))
	old := s.a.CRLPEM(pkitest.CRLNumber(7))
	s.write("a.crl", old)
	s.want([]string{"A Root#7", "B Root#1"}, nil, nil)
	s.write("a.crl", s.a.CRLPEM(pkitest.CRLNumber(9), pkitest.CRLRevoked(s.alice)))
	s.want([]string{"A Root#9", "B Root#1"}, nil, nil)

	s.write("a.crl", old)
	s.want([]string{"A Root#9", "B Root#1"}, [][]string{{"$S/a.crl: CRL 1 (issuer CN=A Root) has CRL number 7", "older than CRL number 9", "already served for this CA (from $S/a.crl)", "refused, so that revocation never goes backwards"}}, nil)

	// Two files of one CA: the older one is refused, in the same load.
	s.write("a.crl", s.a.CRLPEM(pkitest.CRLNumber(9), pkitest.CRLRevoked(s.alice)))
	s.write("a-old.crl", old)
	s.want([]string{"A Root#9", "B Root#1"}, [][]string{{"$S/a-old.crl: CRL 1 (issuer CN=A Root) has CRL number 7", "older than CRL number 9", "in $S/a.crl"}}, nil)
	s.tr.Remove("certs/trust/s/a-old.crl")

	// The CRL file deleted, the CA kept: the newest CRL stays served.
	s.tr.Remove("certs/trust/s/a.crl")
	s.want([]string{"B Root#1", "A Root#9"}, nil, [][]string{{`no file of trust store "s" gives a CRL of CA CN=A Root any more`, "CRL number 9", "remove the CA from the store"}})

	// The CA leaves: forgotten, so an older CRL is welcome when it returns.
	s.tr.Remove("certs/trust/s/a.pem")
	s.want([]string{"B Root#1"}, nil, nil)
	s.write("a.pem", s.a.CertPEM())
	s.write("a.crl", old)
	s.want([]string{"A Root#7", "B Root#1"}, nil, nil)
}

// TestCRLRollbackAcrossRestart: with a state directory the newest CRL of
// each CA survives the process, on disk with modes 0600 and 0700; check
// reads it and writes nothing.
func TestCRLRollbackAcrossRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	s := newTwoCAs(t, newMemory(t, state, false))
	old := s.a.CRLPEM(pkitest.CRLNumber(3))
	newer := s.a.CRLPEM(pkitest.CRLNumber(4), pkitest.CRLRevoked(s.alice))
	s.write("a.crl", old)
	s.want([]string{"A Root#3", "B Root#1"}, nil, nil)
	s.write("a.crl", newer)
	s.want([]string{"A Root#4", "B Root#1"}, nil, nil)
	s.write("a.crl", old)

	// A restart: a fresh memory over the same state directory.
	s.ld.Trust = newMemory(t, state, false)
	s.want([]string{"A Root#4", "B Root#1"}, [][]string{{"$S/a.crl: CRL 1 (issuer CN=A Root) has CRL number 3", "older than CRL number 4", "already served for this CA (from " + state}}, nil)

	// check, read-only: the same verdict, nothing written.
	before := listTree(t, state)
	s.ld.Trust = newMemory(t, state, true)
	s.want([]string{"A Root#4", "B Root#1"}, [][]string{{"has CRL number 3", "older than CRL number 4"}}, nil)
	if after := listTree(t, state); !slices.Equal(before, after) {
		t.Errorf("a read-only memory changed the state directory:\n%q\n%q", before, after)
	}
	for _, e := range before {
		if !strings.HasSuffix(e, " 0600") && !strings.HasSuffix(e, " 0700") {
			t.Errorf("state entry %s: want files 0600 and directories 0700", e)
		}
	}
	// A CA that leaves the store is forgotten on disk too.
	s.ld.Trust = newMemory(t, state, false)
	s.tr.Remove("certs/trust/s/a.pem")
	s.tr.Remove("certs/trust/s/a.crl")
	s.want([]string{"B Root#1"}, nil, nil)
	if after := listTree(t, state); len(after) != len(before)-1 {
		t.Errorf("state after A left: %q; want one CRL file fewer than %q", after, before)
	}

	// Without the state directory, a restart trusts the disk (documented).
	s.write("a.pem", s.a.CertPEM())
	s.write("a.crl", old)
	s.ld.Trust = newMemory(t, "", false)
	s.want([]string{"A Root#3", "B Root#1"}, nil, nil)

	// A read-only memory on a missing directory is empty, and creates none.
	missing := filepath.Join(t.TempDir(), "absent")
	newMemory(t, missing, true)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("read-only memory created %s: %v", missing, err)
	}
	// A state directory others may write to is refused.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := config.NewTrustMemory(open, false); err == nil || !strings.Contains(err.Error(), "writable by group or others (mode 0777); chmod 700 it") {
		t.Errorf("world-writable state directory: %v", err)
	}
}

// listTree lists every entry under dir with its mode, and checks the saved
// files hold DER CRLs.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %04o", strings.TrimPrefix(p, dir), info.Mode().Perm()))
		if !info.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if blk, _ := pem.Decode(b); blk != nil {
				t.Errorf("%s is PEM; the state holds DER", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
