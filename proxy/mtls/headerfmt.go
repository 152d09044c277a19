package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The command operators request_headers_to_add may use (docs/resources.md).
var peerCommands = map[string]bool{
	"DOWNSTREAM_PEER_SERIAL":       false, // false: takes no (argument)
	"DOWNSTREAM_PEER_ISSUER":       false,
	"DOWNSTREAM_PEER_SUBJECT":      false,
	"DOWNSTREAM_PEER_CERT":         false,
	"DOWNSTREAM_PEER_CERT_V_START": true,
	"DOWNSTREAM_PEER_CERT_V_END":   true,
}

// segment is literal text or one command.
type segment struct {
	text    string
	command string
	arg     string
	maxLen  int // 0: unlimited
}

// CheckHeaderFormat validates a header value format; any operator other
// than the %DOWNSTREAM_PEER_*% ones above is an error (a NACK).
func CheckHeaderFormat(format string) error {
	_, err := parseHeaderFormat(format)
	return err
}

// ExpandHeaderFormat renders format for a connection the way Envoy's header
// formatter does: missing values (no peer certificate) render as "". "%%"
// is a literal "%".
func ExpandHeaderFormat(format string, cs *tls.ConnectionState) (string, error) {
	segs, err := parseHeaderFormat(format)
	if err != nil {
		return "", err
	}
	var leaf *x509.Certificate
	if cs != nil && len(cs.PeerCertificates) > 0 {
		leaf = cs.PeerCertificates[0]
	}
	var b strings.Builder
	for _, s := range segs {
		if s.command == "" {
			b.WriteString(s.text)
			continue
		}
		if leaf == nil {
			continue
		}
		var v string
		switch s.command {
		case "DOWNSTREAM_PEER_SERIAL":
			v = serialHex(leaf.SerialNumber)
		case "DOWNSTREAM_PEER_ISSUER":
			v = rfc2253(leaf.RawIssuer)
		case "DOWNSTREAM_PEER_SUBJECT":
			v = rfc2253(leaf.RawSubject)
		case "DOWNSTREAM_PEER_CERT":
			v = urlEncodedPEM(leaf)
		case "DOWNSTREAM_PEER_CERT_V_START":
			v = strftime(s.arg, leaf.NotBefore)
		case "DOWNSTREAM_PEER_CERT_V_END":
			v = strftime(s.arg, leaf.NotAfter)
		}
		if s.maxLen > 0 && len(v) > s.maxLen {
			v = v[:s.maxLen]
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func parseHeaderFormat(format string) ([]segment, error) {
	var segs []segment
	var text strings.Builder
	for i := 0; i < len(format); {
		c := format[i]
		if c != '%' {
			text.WriteByte(c)
			i++
			continue
		}
		if strings.HasPrefix(format[i:], "%%") {
			text.WriteByte('%')
			i += 2
			continue
		}
		end := strings.IndexByte(format[i+1:], '%')
		// A "(...)" argument may itself hold '%' (strftime): the command
		// ends at the first ")%" or ")"+":N%" after "(".
		body := ""
		if open := strings.IndexByte(format[i+1:], '('); open >= 0 && (end < 0 || open < end) {
			closeAt := strings.Index(format[i+1+open:], ")")
			if closeAt < 0 {
				return nil, fmt.Errorf("header format %q: unterminated ( at position %d", format, i)
			}
			after := i + 1 + open + closeAt + 1
			rest := strings.IndexByte(format[after:], '%')
			if rest < 0 {
				return nil, fmt.Errorf("header format %q: unterminated command at position %d", format, i)
			}
			body = format[i+1 : after+rest]
			i = after + rest + 1
		} else {
			if end < 0 {
				return nil, fmt.Errorf("header format %q: unterminated command at position %d (write %%%% for a literal %%)", format, i)
			}
			body = format[i+1 : i+1+end]
			i += end + 2
		}
		seg, err := parseCommand(body)
		if err != nil {
			return nil, fmt.Errorf("header format %q: %w", format, err)
		}
		if text.Len() > 0 {
			segs = append(segs, segment{text: text.String()})
			text.Reset()
		}
		segs = append(segs, seg)
	}
	if text.Len() > 0 {
		segs = append(segs, segment{text: text.String()})
	}
	return segs, nil
}

func parseCommand(body string) (segment, error) {
	s := segment{}
	name := body
	if k := strings.IndexByte(body, '('); k >= 0 {
		j := strings.LastIndexByte(body, ')')
		if j < k {
			return s, fmt.Errorf("command %%%s%%: malformed argument", body)
		}
		name, s.arg = body[:k], body[k+1:j]
		if tail := body[j+1:]; tail != "" {
			if !strings.HasPrefix(tail, ":") {
				return s, fmt.Errorf("command %%%s%%: unexpected %q after the argument", body, tail)
			}
			n, err := strconv.Atoi(tail[1:])
			if err != nil || n <= 0 {
				return s, fmt.Errorf("command %%%s%%: bad length %q", body, tail[1:])
			}
			s.maxLen = n
		}
	} else if k := strings.IndexByte(body, ':'); k >= 0 {
		n, err := strconv.Atoi(body[k+1:])
		if err != nil || n <= 0 {
			return s, fmt.Errorf("command %%%s%%: bad length %q", body, body[k+1:])
		}
		name, s.maxLen = body[:k], n
	}
	takesArg, ok := peerCommands[name]
	if !ok {
		return s, fmt.Errorf("command %%%s%% is not implemented by certplane proxy", name)
	}
	if strings.Contains(body, "(") && !takesArg {
		return s, fmt.Errorf("command %%%s%% takes no argument", name)
	}
	if takesArg {
		if err := checkStrftime(s.arg); err != nil {
			return s, fmt.Errorf("command %%%s%%: %w", name, err)
		}
	}
	s.command = name
	return s, nil
}

// strftime formats t in UTC with Envoy's DateFormatter conventions for the
// supported specifiers. An empty format is Envoy's default access-log time,
// %Y-%m-%dT%H:%M:%E3SZ.
func strftime(format string, t time.Time) string {
	t = t.UTC()
	if format == "" {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch c := format[i]; c {
		case 'Y':
			b.WriteString(fmt.Sprintf("%04d", t.Year()))
		case 'y':
			b.WriteString(fmt.Sprintf("%02d", t.Year()%100))
		case 'm':
			b.WriteString(fmt.Sprintf("%02d", int(t.Month())))
		case 'd':
			b.WriteString(fmt.Sprintf("%02d", t.Day()))
		case 'e':
			b.WriteString(fmt.Sprintf("%2d", t.Day()))
		case 'H':
			b.WriteString(fmt.Sprintf("%02d", t.Hour()))
		case 'M':
			b.WriteString(fmt.Sprintf("%02d", t.Minute()))
		case 'S':
			b.WriteString(fmt.Sprintf("%02d", t.Second()))
		case 'j':
			b.WriteString(fmt.Sprintf("%03d", t.YearDay()))
		case 'b':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case 'z':
			b.WriteString("+0000")
		case 'Z':
			b.WriteString("UTC")
		case '%':
			b.WriteByte('%')
		}
	}
	return b.String()
}

// checkStrftime refuses specifiers strftime would not render as documented.
func checkStrftime(format string) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		if i+1 == len(format) {
			return fmt.Errorf("time format %q ends with %%", format)
		}
		i++
		if !strings.ContainsRune("YymdeHMSjbBaAFTDRszZ%", rune(format[i])) {
			return fmt.Errorf("time format %q: specifier %%%c is not implemented", format, format[i])
		}
	}
	return nil
}
