package proxy

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// TestCanonicalPathEnvoyVectors replays Envoy's path_utility_test.cc
// vectors for normalize_path (canonicalPath, with dot-segment parameters
// stripped) and merge_slashes.
func TestCanonicalPathEnvoyVectors(t *testing.T) {
	normalize := pathConfig{normalize: true, escaped: hcmv3.HttpConnectionManager_KEEP_UNCHANGED}
	for in, want := range map[string]string{
		"/xyz": "/xyz", "/x/y/z": "/x/y/z",
		"/a/b/../c": "/a/c", "/a/b/./c": "/a/b/c", "a/b/../c": "/a/c", "/a/b/../../../../c": "/c",
		`/a/..\c`: "/c", "/%c0%af": "/%c0%af", "/%5c%25": "/%5c%25", "/a/b/%2E%2E/c": "/a/c",
		"/a/b/%2E./c": "/a/c", "/a/b/%2E/c": "/a/b/c", "..": "/", "/../a/b": "/a/b", "/./a/b": "/a/b",
		"/xyz/..;foo=bar/abc": "/abc", "/..;foo=bar/abc": "/abc", "/xyz/..;foo=bar": "/",
		"/xyz/.;foo=bar/abc": "/xyz/abc", "/.;foo=bar/abc": "/abc", "/xyz/.;foo=bar": "/xyz/",
		"/xyz/..;foo=bar/.;v1=2,v2=3/abc": "/abc", "/..;foo=bar/abc/.;mmm": "/abc/",
		"/.;aaa/..;foo=bar/abc/.;mmm": "/abc/", "/xyz/..;foo=bar/.;fff=zzz": "/",
		"/xyz/..;foo=bar/.;fff=zzz?blah=woops":             "/?blah=woops",
		"/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query": "/remain;blah-bluh?query",
		"/A/B/C": "/A/B/C", "/a/b/%2e%2e/c": "/a/c", "/a/%2F%2f/c": "/a/%2F%2f/c",
		// Chromium's character classes: unreserved escapes are decoded,
		// characters outside the path set are encoded.
		"/%41%7e%2d%5f": "/A~-_", "/a b\"<>`{}": "/a%20b%22%3C%3E%60%7B%7D", "/é": "/%C3%A9",
		"/a|b^[]!$&'()*+,;=:@": "/a|b^[]!$&'()*+,;=:@", "/a...b/...": "/a...b/...",
	} {
		if got, v := normalize.apply(in); got != want || v != pathContinue {
			t.Errorf("normalize %q = %q (%v), want %q", in, got, v, want)
		}
	}
	for _, in := range []string{"/xyz/.%00../abc", "/xyz/%00.%00./abc", "/a#frag"} {
		if _, v := normalize.apply(in); v != pathReject {
			t.Errorf("normalize %q: verdict %v, want reject", in, v)
		}
	}
	merge := pathConfig{merge: true}
	for in, want := range map[string]string{
		"": "", "a//b/c": "a/b/c", "/a//b/c/": "/a/b/c/", "a//b/c/": "a/b/c/", "/a": "/a", "//a/b/c": "/a/b/c",
		"/a/b/c//": "/a/b/c/", "/a///b/c": "/a/b/c", "/a//b?a=///c": "/a/b?a=///c", "/a//b?": "/a/b?", "//a/?b": "/a/?b",
	} {
		if got, _ := merge.apply(in); got != want {
			t.Errorf("merge %q = %q, want %q", in, got, want)
		}
	}
}

// TestEscapedSlashActions: %2F and %5C in the path (never the query) are
// kept, refused, unescaped and redirected, or unescaped and forwarded, and
// the unescaped path is then normalized.
func TestEscapedSlashActions(t *testing.T) {
	const in = "/a%2F..%2fadmin%5Cx?q=%2F"
	for _, c := range []struct {
		action hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
		want   string
		v      pathVerdict
	}{
		{hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, in, pathContinue},
		{hcmv3.HttpConnectionManager_KEEP_UNCHANGED, in, pathContinue},
		{hcmv3.HttpConnectionManager_REJECT_REQUEST, in, pathReject},
		{hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, "/admin/x?q=%2F", pathRedirect},
		{hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD, "/admin/x?q=%2F", pathContinue},
	} {
		got, v := pathConfig{normalize: true, merge: true, escaped: c.action}.apply(in)
		if v != c.v || (v != pathReject && got != c.want) {
			t.Errorf("%v: %q (%v), want %q (%v)", c.action, got, v, c.want, c.v)
		}
	}
	if got, v := (pathConfig{normalize: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST}).apply("/a/b?q=%2F"); got != "/a/b?q=%2F" || v != pathContinue {
		t.Errorf("escaped slash in the query: %q %v, want it untouched", got, v)
	}
}
