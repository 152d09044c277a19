package pemder

import (
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecode: blocks and their lines; a BEGIN that starts no block is an
// error at its line, where encoding/pem would skip to a later block.
func TestDecode(t *testing.T) {
	a := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	b := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{4}}))
	blocks, err := Decode([]byte("Bag Attributes\n" + a + "comment\n" + b))
	if err != nil || len(blocks) != 2 {
		t.Fatalf("Decode = %d blocks, %v", len(blocks), err)
	}
	if blocks[0].Line != 2 || blocks[1].Type != TypeCRL || blocks[1].Line != 6 || string(blocks[1].DER) != "\x04" {
		t.Errorf("blocks: %+v", blocks)
	}
	_, err = Decode([]byte("-----BEGIN CERTIFICATE-----\n!!!\n" + b))
	if err == nil || !strings.Contains(err.Error(), "malformed or truncated PEM block at line 1") {
		t.Errorf("broken first block: %v", err)
	}
	if blocks, err := Decode([]byte{0x30, 0x03, 1, 2, 3}); err != nil || len(blocks) != 0 || !LooksDER([]byte{0x30, 0x03, 1, 2, 3}) {
		t.Errorf("DER: %v %v", blocks, err)
	}
}

// TestBlocksDER: a file without BEGIN is one DER block of type "".
func TestBlocksDER(t *testing.T) {
	var got []Block
	if err := Blocks([]byte{0x30, 0}, func(b Block) error { got = append(got, b); return nil }); err != nil || len(got) != 1 || got[0].Type != "" {
		t.Fatalf("Blocks = %+v, %v", got, err)
	}
	if err := Blocks([]byte(" \n"), func(Block) error { return nil }); err == nil || err.Error() != "empty file" {
		t.Errorf("empty: %v", err)
	}
}

// TestEncode: byte for byte what encoding/pem writes, at every length
// around a line boundary, in a buffer of exactly its size.
func TestEncode(t *testing.T) {
	for n := range 200 {
		der := make([]byte, n)
		for i := range der {
			der[i] = byte(i * 7)
		}
		got := Encode(TypeCRL, der)
		if want := pem.EncodeToMemory(&pem.Block{Type: TypeCRL, Bytes: der}); string(got) != string(want) {
			t.Fatalf("%d bytes:\n%s\nwant\n%s", n, got, want)
		}
		if cap(got) != len(got) {
			t.Errorf("%d bytes: capacity %d, length %d", n, cap(got), len(got))
		}
	}
}

// TestStream: Stream hands over what Lenient does, streaming clean PEM and
// falling back (after reset) on what Blocks refuses.
func TestStream(t *testing.T) {
	a := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1, 2, 3}}))
	b := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{4, 5}}))
	for name, data := range map[string]string{
		"clean":        a + b,
		"junk between": a + "junk\n" + b,
		"junk after":   a[:len(a)-1] + " junk\n" + b, // text after an END line: Blocks refuses it
		"broken block": "-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n" + b,
		"no PEM":       "not pem",
	} {
		var want []string
		_ = Lenient([]byte(data), func(i int, blk Block) error {
			want = append(want, fmt.Sprint(i, blk.Type, blk.DER))
			return nil
		})
		var got []string
		err := Stream([]byte(data), func() { got = nil }, func(i int, blk Block) error {
			got = append(got, fmt.Sprint(i, blk.Type, blk.DER))
			return nil
		})
		if err != nil || strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("%s: Stream = %q, %v; Lenient %q", name, got, err, want)
		}
	}
	stop := errors.New("stop")
	if err := Stream([]byte(a+b), func() {}, func(int, Block) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
}

// TestIsEncoding: true for Encode's output only.
func TestIsEncoding(t *testing.T) {
	for n := range 150 {
		der := make([]byte, n)
		for i := range der {
			der[i] = byte(i * 13)
		}
		text := Encode(TypeCRL, der)
		if !IsEncoding(text, TypeCRL, der) {
			t.Fatalf("%d bytes: own encoding refused", n)
		}
		if IsEncoding(append(text, '\n'), TypeCRL, der) || IsEncoding(text, TypeCertificate, der) {
			t.Fatalf("%d bytes: other text accepted", n)
		}
		if n > 0 {
			other := append([]byte(nil), der...)
			other[n-1]++
			if IsEncoding(text, TypeCRL, other) {
				t.Fatalf("%d bytes: other DER accepted", n)
			}
		}
	}
}
