// Package pemder is certplane's one reader of PEM and DER files: every
// Load and Parse of certificates, keys, trust bundles and CRLs goes through
// it, so that a file means the same to check, serve, the proxy and pki.
//
// Two readers, for two needs:
//   - Decode returns every block of a file, with the line of its BEGIN, and
//     refuses a BEGIN line that starts no well-formed block (encoding/pem
//     would skip it silently and return a later block).
//   - Blocks streams the blocks of a possibly huge file (a CRL of a million
//     serials): each block is decoded into one buffer of its exact size,
//     and neither the file nor a block's base64 text is ever copied.
package pemder

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types certplane reads.
const (
	TypeCertificate = "CERTIFICATE"
	TypeCRL         = "X509 CRL"
)

// Block is one block of a file.
type Block struct {
	Type    string // PEM type; "" for DER input (Blocks)
	Headers map[string]string
	DER     []byte
	Line    int // 1-based line of the BEGIN line; 1 for DER input
}

// Decode splits data into PEM blocks in order. Text between blocks
// (OpenSSL's "Bag Attributes", comments) is allowed, as OpenSSL allows it.
// A BEGIN without a well-formed block after it is an error naming its line.
// Data without any BEGIN gives no block and no error: the caller decides
// what that means (DER, or an empty bundle).
func Decode(data []byte) ([]Block, error) {
	var blocks []Block
	rest := data
	for {
		begin := bytes.Index(rest, pemBegin)
		if begin < 0 {
			return blocks, nil
		}
		line := LineAt(data, len(data)-len(rest)+begin)
		block, next := pem.Decode(rest)
		if block == nil {
			return nil, malformed(line)
		}
		// pem.Decode skips a BEGIN it cannot parse and returns a later
		// block: insist that the block decoded starts at the BEGIN found.
		consumed := len(rest) - len(next)
		if bytes.LastIndex(rest[:consumed], pemBegin) != begin {
			return nil, malformed(line)
		}
		blocks = append(blocks, Block{Type: block.Type, Headers: block.Headers, DER: block.Bytes, Line: line})
		rest = next
	}
}

func malformed(line int) error {
	return fmt.Errorf("malformed or truncated PEM block at line %d (no valid END line or bad base64)", line)
}

// Lenient calls fn for each block encoding/pem finds, in order, skipping
// what it cannot decode, as Envoy's inline PEM readers do; i counts the
// blocks handed over. It stops at fn's first error.
func Lenient(data []byte, fn func(i int, b Block) error) error {
	for i := 0; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil
		}
		if err := fn(i, Block{Type: block.Type, Headers: block.Headers, DER: block.Bytes}); err != nil {
			return err
		}
	}
}

// Stream hands fn the blocks Lenient would, with Blocks' memory: each
// block decoded into one buffer of its size, the base64 text never copied
// (a 48 MB CRL then costs 35 MB to decode, not 83). When data is not PEM
// Blocks reads cleanly (a malformed block, text after an END line, PEM
// headers), Stream calls reset to undo what fn did and walks data again
// with Lenient. An error of fn ends the walk and is returned as it is.
func Stream(data []byte, reset func(), fn func(i int, b Block) error) error {
	if BeginAt(data) < 0 {
		return Lenient(data, fn)
	}
	i := 0
	var fnErr error
	err := Blocks(data, func(b Block) error {
		b.Line = 0 // Lenient does not know lines
		if fnErr = fn(i, b); fnErr != nil {
			return fnErr
		}
		i++
		return nil
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr
	}
	reset()
	return Lenient(data, fn)
}

// Encode is the PEM of one DER block, as pem.EncodeToMemory writes it,
// in a buffer of exactly its size: pem.EncodeToMemory grows a
// bytes.Buffer, and the PEM of a 1M-serial CRL (48 MB) then holds 64 MB.
func Encode(typ string, der []byte) []byte {
	const line = 48 // DER bytes per 64-character line
	lines := (len(der) + line - 1) / line
	size := len("-----BEGIN -----\n") + len("-----END -----\n") + 2*len(typ) + base64.StdEncoding.EncodedLen(len(der)) + lines
	out := make([]byte, 0, size)
	out = append(out, "-----BEGIN "...)
	out = append(out, typ...)
	out = append(out, "-----\n"...)
	for len(der) > 0 {
		n := min(line, len(der))
		out = base64.StdEncoding.AppendEncode(out, der[:n])
		out = append(out, '\n')
		der = der[n:]
	}
	out = append(out, "-----END "...)
	out = append(out, typ...)
	out = append(out, "-----\n"...)
	return out
}

// IsEncoding reports whether text is exactly Encode(typ, der), without
// allocating: a file holding one block as Encode writes it can then be
// served as it was read, instead of encoded again.
func IsEncoding(text []byte, typ string, der []byte) bool {
	head := "-----BEGIN " + typ + "-----\n"
	tail := "-----END " + typ + "-----\n"
	if len(text) < len(head)+len(tail) || string(text[:len(head)]) != head || string(text[len(text)-len(tail):]) != tail {
		return false
	}
	body := text[len(head) : len(text)-len(tail)]
	var buf [65]byte
	for len(der) > 0 {
		n := min(48, len(der))
		line := base64.StdEncoding.AppendEncode(buf[:0], der[:n])
		line = append(line, '\n')
		if len(body) < len(line) || string(body[:len(line)]) != string(line) {
			return false
		}
		body, der = body[len(line):], der[n:]
	}
	return len(body) == 0
}

// LineAt is the 1-based line of offset off in data.
func LineAt(data []byte, off int) int {
	return bytes.Count(data[:off], newline) + 1
}

// LooksDER reports whether data starts like a DER SEQUENCE with a sane length.
func LooksDER(data []byte) bool {
	return len(data) > 2 && data[0] == 0x30 && (data[1] >= 0x80 && data[1] <= 0x84 || int(data[1]) == len(data)-2)
}

// Blocks calls fn for each block of data in order and stops at the first
// error. data is PEM when a line starts with "-----BEGIN ", and then every
// block is handed over, whatever its type; text between blocks is ignored,
// as OpenSSL does. Otherwise data is one DER element, handed over as it is
// with Type "". Each PEM block is decoded into one buffer of its exact
// size, which fn owns.
func Blocks(data []byte, fn func(Block) error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty file")
	}
	if BeginAt(data) < 0 {
		return fn(Block{DER: data, Line: 1})
	}
	line, rest := 1, data
	for {
		i := BeginAt(rest)
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

var (
	pemBegin = []byte("-----BEGIN ")
	pemDash  = []byte("-----")
	newline  = []byte("\n")
)

// BeginAt is the offset of the first "-----BEGIN " at a line start, or -1:
// data is PEM exactly when it is not -1.
func BeginAt(data []byte) int {
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
	typ := head[:len(head)-len(pemDash)]
	bodyEnd, span := endLine(data[eol:], typ)
	if bodyEnd < 0 {
		return Block{}, 0, fmt.Errorf("no -----END %s----- line", typ)
	}
	body := data[eol : eol+bodyEnd]
	span += eol
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
	return Block{Type: string(typ), DER: der}, span, nil
}

var pemEnd = []byte("\n-----END ")

// endLine finds "\n-----END typ-----" in data: the offset of its newline
// and the offset just past it, or -1.
func endLine(data, typ []byte) (at, past int) {
	for off := 0; ; {
		i := bytes.Index(data[off:], pemEnd)
		if i < 0 {
			return -1, 0
		}
		at = off + i
		rest := data[at+len(pemEnd):]
		if bytes.HasPrefix(rest, typ) && bytes.HasPrefix(rest[len(typ):], pemDash) {
			return at, at + len(pemEnd) + len(typ) + len(pemDash)
		}
		off = at + len(pemEnd)
	}
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
	var chunk [1024]byte // a multiple of 4: chunks decode independently
	w, filled := 0, 0
	var err error
	for _, c := range body {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if filled == len(chunk) {
			if w, err = decodeChunk(out, w, chunk[:], false); err != nil {
				return nil, err
			}
			filled = 0
		}
		chunk[filled] = c
		filled++
	}
	if w, err = decodeChunk(out, w, chunk[:filled], true); err != nil {
		return nil, err
	}
	return out[:w], nil
}

// decodeChunk decodes chunk into out at w and returns the new end. Only the
// last chunk may end in padding, as in one decode of the whole text.
func decodeChunk(out []byte, w int, chunk []byte, last bool) (int, error) {
	k, err := base64.StdEncoding.Decode(out[w:], chunk)
	if err != nil {
		return 0, fmt.Errorf("malformed base64: %w", err)
	}
	if k != len(chunk)/4*3 && !last {
		return 0, errors.New("malformed base64: padding before the end")
	}
	return w + k, nil
}
