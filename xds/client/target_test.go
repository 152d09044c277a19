package client

import "testing"

// TestCheckTarget: the unix socket forms certplane serve and gRPC print are
// accepted; a relative path or a host part, which gRPC would dial somewhere
// else or not at all, is refused at once.
func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		unix   bool
		host   string
		err    string
	}{
		{target: "unix:///run/certplane/xds.sock", unix: true},
		{target: "unix:/run/certplane/xds.sock", unix: true},
		{target: "127.0.0.1:18000", host: "127.0.0.1"},
		{target: "[::1]:18000", host: "::1"},
		{target: "unix://run/certplane/xds.sock", err: `xds client: target "unix://run/certplane/xds.sock": want unix:///absolute/path (a relative path or a host is not a socket path)`},
		{target: "unix:xds.sock", err: `xds client: target "unix:xds.sock": want unix:///absolute/path (a relative path or a host is not a socket path)`},
		{target: "unix:", err: `xds client: target "unix:" has no socket path: want unix:///path`},
		{target: "unix:///", err: `xds client: target "unix:///" has no socket path: want unix:///path`},
		{target: "unix-abstract:xds", err: `xds client: target "unix-abstract:xds": port "xds" is not a number in 1..65535`},
	} {
		unix, host, err := checkTarget(tc.target)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("checkTarget(%q) = %v\nwant %s", tc.target, err, tc.err)
			}
			continue
		}
		if err != nil || unix != tc.unix || host != tc.host {
			t.Errorf("checkTarget(%q) = %v, %q, %v; want %v, %q", tc.target, unix, host, err, tc.unix, tc.host)
		}
	}
}
