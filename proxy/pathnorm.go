package proxy

import (
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// pathConfig is what an HTTP connection manager says about the request
// path before routing: normalize_path, merge_slashes and
// path_with_escaped_slashes_action.
type pathConfig struct {
	normalize bool
	merge     bool
	escaped   hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
}

// pathVerdict is what becomes of a request after path normalization.
type pathVerdict int

const (
	pathContinue pathVerdict = iota
	pathRedirect             // answer 307 to the normalized path
	pathReject               // answer 400
)

// apply normalizes a request target (path and query) as Envoy's
// ConnectionManagerUtility::maybeNormalizePath does, in its order: a
// fragment is refused; %2F and %5C in the path are handled per the escaped
// slashes action; then RFC 3986 normalization (Chromium's path
// canonicalizer, which Envoy uses) and then merging of repeated slashes.
// The query is never touched.
func (c pathConfig) apply(target string) (string, pathVerdict) {
	if strings.IndexByte(target, '#') >= 0 {
		return target, pathReject
	}
	path, query := target, ""
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i:]
	}
	verdict := pathContinue
	switch c.escaped {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		if u := unescapeSlashes(path); u != path {
			path = u
			switch c.escaped {
			case hcmv3.HttpConnectionManager_REJECT_REQUEST:
				return target, pathReject
			case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
				verdict = pathRedirect
			}
		}
	}
	if c.normalize {
		p, ok := canonicalPath(stripDotSegmentParameters(path))
		if !ok {
			return target, pathReject
		}
		path = p
	}
	if c.merge {
		path = mergeSlashes(path)
	}
	return path + query, verdict
}

var slashEscapes = strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`)

// unescapeSlashes is Envoy's PathUtil::unescapeSlashes on a path.
func unescapeSlashes(path string) string {
	if strings.IndexByte(path, '%') < 0 {
		return path
	}
	return slashEscapes.Replace(path)
}

// stripDotSegmentParameters turns "..;x" and ".;x" segments into ".." and
// ".", so that normalization collapses them (Envoy's
// stripParametersFromDotSegments).
func stripDotSegmentParameters(path string) string {
	if !strings.Contains(path, ".;") {
		return path
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, "..;"):
			segs[i] = ".."
		case strings.HasPrefix(s, ".;"):
			segs[i] = "."
		}
	}
	return strings.Join(segs, "/")
}

// mergeSlashes is Envoy's PathUtil::mergeSlashes on a path: runs of '/'
// become one, a leading and a trailing slash are kept.
func mergeSlashes(path string) string {
	if !strings.Contains(path, "//") {
		return path
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	out := strings.Join(segs, "/")
	if strings.HasPrefix(path, "/") {
		out = "/" + out
	}
	if strings.HasSuffix(path, "/") {
		out += "/"
	}
	return out
}

// Character classes of Chromium's path canonicalizer (url_canon_path.cc).
const (
	pcPass     = iota // copied as is, and kept escaped when escaped
	pcUnescape        // copied as is, and unescaped when escaped
	pcEscape          // percent-encoded
	pcInvalid         // refused (NUL)
)

var pathClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == 0:
			t[c] = pcInvalid
		case c < 0x20 || c >= 0x7f:
			t[c] = pcEscape
		case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '-', c == '_', c == '~':
			t[c] = pcUnescape
		case strings.IndexByte(" \"#%<>?\\`{}", byte(c)) >= 0:
			t[c] = pcEscape
		default:
			t[c] = pcPass
		}
	}
	return t
}()

// canonicalPath canonicalizes a path as Chromium's CanonicalizePath, which
// Envoy's normalize_path applies: a leading '/' is added, '\' is a '/',
// "." and ".." segments (also written %2e) are resolved without climbing
// above the root, escapes of unreserved characters are decoded, other
// escapes are kept with their case, and characters that must be escaped
// are. ok is false for a NUL (raw or %00), which Envoy refuses.
func canonicalPath(path string) (string, bool) {
	if isCanonical(path) {
		return path, true
	}
	out := make([]byte, 0, len(path)+1)
	if path == "" || !isURLSlash(path[0]) {
		out = append(out, '/')
	}
	ok := true
	for i := 0; i < len(path); i++ {
		c := path[i]
		if dl := dotLen(path, i); dl > 0 {
			consumed := 0
			if out[len(out)-1] == '/' {
				var kind dotKind
				kind, consumed = classifyAfterDot(path, i+dl)
				switch kind {
				case notDirectory:
					out = append(out, '.')
				case directoryUp:
					out = backUpToPreviousSlash(out)
				}
			} else {
				out = append(out, '.')
			}
			i += dl + consumed - 1
			continue
		}
		switch {
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			v, valid := decodeEscape(path, i)
			switch {
			case !valid:
				out = append(out, '%') // unreachable: net/http refuses bad escapes
			case pathClass[v] == pcUnescape:
				out = append(out, v)
				i += 2
			case pathClass[v] == pcInvalid:
				out = append(out, path[i:i+3]...)
				ok = false
				i += 2
			default:
				out = append(out, path[i:i+3]...)
				i += 2
			}
		case pathClass[c] == pcInvalid:
			out = appendEscaped(out, c)
			ok = false
		case pathClass[c] == pcEscape:
			out = appendEscaped(out, c)
		default:
			out = append(out, c)
		}
	}
	return string(out), ok
}

// isCanonical reports, without allocating, a path that canonicalPath
// leaves as it is: it starts with '/' and holds no dot, escape, backslash
// or character to encode. Most requests' paths are such.
func isCanonical(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '.' || c == '%' || c == '\\' || pathClass[c] >= pcEscape {
			return false
		}
	}
	return true
}

type dotKind int

const (
	notDirectory dotKind = iota
	directoryCurrent
	directoryUp
)

func isURLSlash(c byte) bool { return c == '/' || c == '\\' }

// dotLen is 1 for ".", 3 for "%2e" or "%2E" at path[i], else 0.
func dotLen(path string, i int) int {
	if path[i] == '.' {
		return 1
	}
	if path[i] == '%' && i+3 <= len(path) && path[i+1] == '2' && (path[i+2] == 'e' || path[i+2] == 'E') {
		return 3
	}
	return 0
}

// classifyAfterDot says what a dot that follows a slash starts, and how
// many more bytes after it belong to the segment (the second dot, the
// slash).
func classifyAfterDot(path string, after int) (dotKind, int) {
	if after == len(path) {
		return directoryCurrent, 0
	}
	if isURLSlash(path[after]) {
		return directoryCurrent, 1
	}
	if dl := dotLen(path, after); dl > 0 {
		next := after + dl
		if next == len(path) {
			return directoryUp, dl
		}
		if isURLSlash(path[next]) {
			return directoryUp, dl + 1
		}
	}
	return notDirectory, 0
}

// backUpToPreviousSlash drops the last segment of out, which ends in '/',
// never going above the first slash.
func backUpToPreviousSlash(out []byte) []byte {
	i := len(out) - 1
	if i == 0 {
		return out
	}
	i--
	for i > 0 && out[i] != '/' {
		i--
	}
	return out[:i+1]
}

func decodeEscape(path string, i int) (byte, bool) {
	if i+2 >= len(path) {
		return 0, false
	}
	hi, ok1 := unhex(path[i+1])
	lo, ok2 := unhex(path[i+2])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendEscaped(out []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(out, '%', hex[c>>4], hex[c&15])
}
