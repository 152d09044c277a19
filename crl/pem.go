package crl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// PEMType is the PEM block type of a CRL.
const PEMType = "X509 CRL"

// Block is one block of a CRL file.
type Block struct {
	Type string // PEM type; PEMType for DER input
	DER  []byte
	Line int // 1-based line of the BEGIN line; 1 for DER input
}

var (
	pemBegin = []byte("-----BEGIN ")
	pemDash  = []byte("-----")
	newline  = []byte("\n")
)

// Blocks calls fn for each block of data in order and stops at the first
// error. data is PEM when a line starts with "-----BEGIN ", and then every
// block is handed over, whatever its type (a trust bundle mixes
// CERTIFICATE and X509 CRL; a .crl file caller refuses other types); text
// between blocks is ignored, as OpenSSL does. Otherwise data is one DER CRL,
// handed over as it is. Each PEM block is decoded into one buffer of its
// exact size, which fn owns: a file is never copied whole, and a block's
// base64 text is never copied either (pem.Decode copies it once more).
func Blocks(data []byte, fn func(Block) error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty file")
	}
	if beginAt(data) < 0 {
		return fn(Block{Type: PEMType, DER: data, Line: 1})
	}
	line, rest := 1, data
	for {
		i := beginAt(rest)
		if i < 0 {
			return nil
		}
		line += bytes.Count(rest[:i], newline)
		b, n, err := decodeBlock(rest[i:])
		if err != nil {
			return fmt.Errorf("PEM block at line %d: %w", line, err)
		}
		b.Line = line
		if err := fn(b); err != nil {
			return err
		}
		line += bytes.Count(rest[i:i+n], newline)
		rest = rest[i+n:]
	}
}

// beginAt is the offset of the first "-----BEGIN " at a line start, or -1.
func beginAt(data []byte) int {
	for off := 0; ; {
		i := bytes.Index(data[off:], pemBegin)
		if i < 0 {
			return -1
		}
		if at := off + i; at == 0 || data[at-1] == '\n' {
			return at
		}
		off += i + len(pemBegin)
	}
}

// decodeBlock decodes the block at the start of data and returns it with
// the bytes it spans (through the END line).
func decodeBlock(data []byte) (Block, int, error) {
	eol := bytes.IndexByte(data, '\n')
	if eol < 0 {
		return Block{}, 0, errors.New("no END line")
	}
	head := bytes.TrimRight(data[len(pemBegin):eol], " \t\r")
	if !bytes.HasSuffix(head, pemDash) || len(head) == len(pemDash) {
		return Block{}, 0, errors.New("malformed BEGIN line")
	}
	typ := string(head[:len(head)-len(pemDash)])
	end := []byte("\n-----END " + typ + "-----")
	bodyEnd := bytes.Index(data[eol:], end)
	if bodyEnd < 0 {
		return Block{}, 0, fmt.Errorf("no -----END %s----- line", typ)
	}
	body := data[eol : eol+bodyEnd]
	span := eol + bodyEnd + len(end)
	if rest := data[span:]; len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			nl = len(rest)
		}
		if len(bytes.TrimRight(rest[:nl], " \t\r")) != 0 {
			return Block{}, 0, errors.New("text after the END line")
		}
		span += nl
	}
	der, err := decodeBase64(body)
	if err != nil {
		return Block{}, 0, fmt.Errorf("%s: %w", typ, err)
	}
	return Block{Type: typ, DER: der}, span, nil
}

// decodeBase64 decodes standard, padded base64 with any ASCII whitespace
// between characters, into a buffer of exactly the decoded size. Headers
// (RFC 1421 "Proc-Type:") are refused: a CRL is never encrypted.
func decodeBase64(body []byte) ([]byte, error) {
	n := 0
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
		case ':':
			return nil, errors.New("PEM headers are not supported")
		default:
			n++
		}
	}
	if n%4 != 0 {
		return nil, errors.New("malformed base64: length is not a multiple of 4")
	}
	out := make([]byte, n/4*3)
	var chunk [1024]byte // a multiple of 4
	w, filled := 0, 0
	flush := func(last bool) error {
		k, err := base64.StdEncoding.Decode(out[w:], chunk[:filled])
		if err != nil {
			return fmt.Errorf("malformed base64: %w", err)
		}
		if k != filled/4*3 && !last {
			return errors.New("malformed base64: padding before the end")
		}
		w, filled = w+k, 0
		return nil
	}
	for _, c := range body {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if filled == len(chunk) {
			if err := flush(false); err != nil {
				return nil, err
			}
		}
		chunk[filled] = c
		filled++
	}
	if err := flush(true); err != nil {
		return nil, err
	}
	return out[:w], nil
}
