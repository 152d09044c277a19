package crl

import (
	"bytes"
	"encoding/pem"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/certplane/certplane/pki"
	"github.com/certplane/certplane/pki/pkitest"
)

// pemBlocks is the reference: encoding/pem's blocks, with their types.
func pemBlocks(data []byte) []Block {
	var out []Block
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		out = append(out, Block{Type: b.Type, DER: b.Bytes})
	}
}

// TestBlocksMatchesEncodingPEM: on every PEM file of the differential
// sources, Blocks yields the blocks encoding/pem yields.
func TestBlocksMatchesEncodingPEM(t *testing.T) {
	var srcs []source
	srcs = append(srcs, generatedCRLs(t)...)
	srcs = append(srcs, fixtureCRLs(t)...)
	if testing.Short() {
		t.Log("short: conformance files skipped")
	} else {
		srcs = append(srcs, conformanceCRLs(t)...)
	}
	n := 0
	for _, src := range srcs {
		if beginAt(src.data) < 0 {
			continue
		}
		var got []Block
		err := Blocks(src.data, func(b Block) error { got = append(got, b); return nil })
		want := pemBlocks(src.data)
		if err != nil {
			if len(want) > 0 && bytes.Contains(src.data, []byte("-----END")) && !strings.Contains(src.name, "truncated") {
				t.Errorf("%s: Blocks: %v; encoding/pem decodes %d blocks", src.name, err, len(want))
			}
			continue
		}
		n++
		if len(got) != len(want) {
			t.Errorf("%s: %d blocks; encoding/pem %d", src.name, len(got), len(want))
			continue
		}
		for i := range got {
			if got[i].Type != want[i].Type || !bytes.Equal(got[i].DER, want[i].DER) {
				t.Errorf("%s: block %d differs from encoding/pem's", src.name, i)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d PEM files compared", n)
	}
}

func TestBlocks(t *testing.T) {
	root := pkitest.NewCA(t, "PEM Root")
	der := root.CRL()
	crlPEM := string(pki.CRLPEM(der))
	certPEM := string(root.CertPEM())
	type got struct {
		types []string
		lines []int
	}
	cases := []struct {
		name    string
		data    string
		want    got
		wantErr string
	}{
		{name: "one CRL", data: crlPEM, want: got{[]string{PEMType}, []int{1}}},
		{name: "DER", data: string(der), want: got{[]string{PEMType}, []int{1}}},
		{name: "bundle with text", data: "# bundle\n" + certPEM + "comment\n\n" + crlPEM, want: got{[]string{"CERTIFICATE", PEMType}, []int{2, 2 + strings.Count(certPEM, "\n") + 2}}},
		{name: "CRLF", data: strings.ReplaceAll(crlPEM+crlPEM, "\n", "\r\n"), want: got{[]string{PEMType, PEMType}, []int{1, 1 + strings.Count(crlPEM, "\n")}}},
		{name: "no final newline", data: strings.TrimSuffix(crlPEM, "\n"), want: got{[]string{PEMType}, []int{1}}},
		{name: "empty", data: " \n\t", wantErr: "empty file"},
		{name: "truncated", data: crlPEM[:len(crlPEM)/2], wantErr: "line 1: no -----END X509 CRL----- line"},
		{name: "END of another type", data: strings.Replace(crlPEM, "END X509 CRL", "END CERTIFICATE", 1), wantErr: "no -----END X509 CRL-----"},
		{name: "header", data: strings.Replace(crlPEM, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1), wantErr: "PEM headers are not supported"},
		{name: "bad base64", data: strings.Replace(crlPEM, "-----\n", "-----\n!!!!", 1), wantErr: "malformed base64"},
		{name: "padding before the end", data: "-----BEGIN X509 CRL-----\n" + strings.Repeat("A", 1020) + "AA==\n" + strings.Repeat("AAAA", 300) + "\n-----END X509 CRL-----\n", wantErr: "padding before the end"},
		{name: "text after END", data: crlPEM[:len(crlPEM)-1] + " junk\n", wantErr: "text after the END line"},
		{name: "BEGIN not at a line start is DER", data: "x-----BEGIN X509 CRL-----", want: got{[]string{PEMType}, []int{1}}},
		{name: "second block broken", data: crlPEM + "\n\n" + crlPEM[:40], wantErr: "PEM block at line " + strconv.Itoa(strings.Count(crlPEM, "\n")+3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var g got
			err := Blocks([]byte(c.data), func(b Block) error {
				g.types, g.lines = append(g.types, b.Type), append(g.lines, b.Line)
				if b.Type == PEMType && c.name != "BEGIN not at a line start is DER" && !bytes.Equal(b.DER, der) {
					t.Errorf("block DER differs from the CRL")
				}
				return nil
			})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Blocks: %v; want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || strings.Join(g.types, ",") != strings.Join(c.want.types, ",") || !slices.Equal(g.lines, c.want.lines) {
				t.Fatalf("Blocks: %+v, %v; want %+v", g, err, c.want)
			}
		})
	}
}

// TestBlocksAllocatesOneBuffer: a block costs its DER buffer and its type
// string, nothing proportional to the text (no copy of the base64).
func TestBlocksAllocatesOneBuffer(t *testing.T) {
	root := pkitest.NewCA(t, "Alloc Root")
	for range 200 {
		root.Revoke(root.Client("c"))
	}
	der := root.CRL()
	data := pki.CRLPEM(der)
	allocs := testing.AllocsPerRun(20, func() {
		if err := Blocks(data, func(Block) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		_ = Blocks(data, func(Block) error { return nil })
	}
	runtime.ReadMemStats(&after)
	perRun := int(after.TotalAlloc-before.TotalAlloc) / 10
	// The DER buffer rounds up to its size class (at most 1/8 more).
	if allocs > 2 || perRun > len(der)+len(der)/8+64 {
		t.Errorf("Blocks: %v allocations, %d bytes for a %d-byte CRL; want the DER buffer and the type", allocs, perRun, len(der))
	}
}
