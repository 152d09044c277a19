// Package systemd tests the systemd units in this directory: systemd's own
// verifier accepts them, their ExecStart flags are the binary's, and the
// sandboxing stays in place.
package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certplane/certplane/deploy/deploytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	deploytest.Cleanup()
	os.Exit(code)
}

var units = []string{"certplane-serve.service", "certplane-proxy.service"}

// unit is a parsed unit file: each key's values, in order, per section.
type unit map[string][]string // "Section.Key" -> values

func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	var cont string // a line continued with a trailing backslash
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if cont != "" {
			line, cont = cont+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: %q is no key=value", file, i+1, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.Join(strings.Fields(v), " "))
		}
	}
	return u
}

// get returns the last value of key ("" when unset).
func (u unit) get(key string) string {
	v := u[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// execStart returns ExecStart's binary and certplane arguments.
func (u unit) execStart(t *testing.T) (string, []string) {
	t.Helper()
	f := strings.Fields(u.get("Service.ExecStart"))
	if len(f) < 2 {
		t.Fatalf("ExecStart %q: want the certplane binary and a subcommand", u.get("Service.ExecStart"))
	}
	return f[0], f[1:]
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on each unit (with
// ExecStart pointing at a freshly built binary, which verify requires to
// exist) and fails on any complaint: verify exits 0 for unknown keys and
// bad values and only prints them. `systemd-analyze security --offline`
// must rate the sandboxing exposure 2.0 or lower ("OK").
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
	}
	bin := deploytest.Binary(t)
	for _, name := range units {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		file := filepath.Join(dir, name)
		data = bytes.ReplaceAll(data, []byte("/usr/local/bin/certplane "), []byte(bin+" "))
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sa, "verify", file)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
		// --threshold counts in tenths: 20 is an exposure of 2.0.
		cmd = exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", file)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze security %s: exposure above 2.0 (%v):\n%s", name, err, out)
		}
	}
}

// TestExecStartFlags checks that every flag in ExecStart is a flag of
// that certplane subcommand, with a value it accepts.
func TestExecStartFlags(t *testing.T) {
	for _, name := range units {
		u := parseUnit(t, name)
		bin, args := u.execStart(t)
		if bin != "/usr/local/bin/certplane" {
			t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/certplane (the install steps' path)", name, bin)
		}
		deploytest.CheckFlags(t, name, args)
	}
}

// TestSandboxing pins what the units promise: a static certplane user, a
// read-only system with only certplane's own directories writable, the
// certificates and config read-only, no capability but
// CAP_NET_BIND_SERVICE for the proxy, SIGHUP for reload, restart on
// failure, and directories that match the flags.
func TestSandboxing(t *testing.T) {
	sysusers, err := os.ReadFile("certplane.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range units {
		u := parseUnit(t, name)
		_, args := u.execStart(t)
		sub := args[0]
		want := map[string]string{
			"Service.User":                    "certplane",
			"Service.ProtectSystem":           "strict",
			"Service.ProtectHome":             "yes",
			"Service.PrivateTmp":              "yes",
			"Service.PrivateDevices":          "yes",
			"Service.NoNewPrivileges":         "yes",
			"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
			"Service.SystemCallArchitectures": "native",
			"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
			"Service.Restart":                 "on-failure",
			"Service.UMask":                   "0077",
			"Service.StateDirectoryMode":      "0700",
			"Service.DynamicUser":             "",
		}
		switch sub {
		case "serve":
			want["Service.CapabilityBoundingSet"] = ""
			want["Service.AmbientCapabilities"] = ""
			want["Service.RuntimeDirectory"] = "certplane"
			want["Service.RuntimeDirectoryMode"] = "0700"
		case "proxy":
			want["Service.CapabilityBoundingSet"] = "CAP_NET_BIND_SERVICE"
			want["Service.AmbientCapabilities"] = "CAP_NET_BIND_SERVICE"
		default:
			t.Fatalf("%s: subcommand %q", name, sub)
		}
		for k, v := range want {
			if got := u.get(k); got != v {
				t.Errorf("%s: %s=%q, want %q", name, k, got, v)
			}
		}
		if _, ok := u["Service.CapabilityBoundingSet"]; !ok {
			t.Errorf("%s: no CapabilityBoundingSet (unset means every capability)", name)
		}
		if !slices.Contains(u["Service.SystemCallFilter"], "@system-service") {
			t.Errorf("%s: SystemCallFilter lacks @system-service", name)
		}
		if !bytes.Contains(sysusers, []byte("u "+u.get("Service.User")+" ")) {
			t.Errorf("%s: user %s is not in certplane.sysusers", name, u.get("Service.User"))
		}
		// Certificates and config read-only.
		for _, f := range []string{"certs", "config"} {
			dir := flagValue(args, f)
			if dir == "" || !underAny(dir, strings.Fields(u.get("Service.ReadOnlyPaths"))) {
				t.Errorf("%s: --%s %q is not under ReadOnlyPaths %q", name, f, dir, u.get("Service.ReadOnlyPaths"))
			}
		}
		// The state directory is the unit's StateDirectory.
		if sd, want := flagValue(args, "state-dir"), "/var/lib/"+u.get("Service.StateDirectory"); sd != want {
			t.Errorf("%s: --state-dir %q, want the StateDirectory %s", name, sd, want)
		}
		if sub == "serve" {
			// The socket in the RuntimeDirectory, which systemd makes 0700
			// and certplane's own: serve refuses a directory others may
			// write to.
			sock, ok := strings.CutPrefix(flagValue(args, "xds-address"), "unix://")
			if !ok || filepath.Dir(sock) != "/run/"+u.get("Service.RuntimeDirectory") {
				t.Errorf("%s: --xds-address %q: want a socket directly in the RuntimeDirectory /run/%s", name, flagValue(args, "xds-address"), u.get("Service.RuntimeDirectory"))
			}
		}
		if a := flagValue(args, "admin-address"); !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("%s: --admin-address %q: keep it on loopback (/status names files and clients)", name, a)
		}
	}
}

func underAny(path string, roots []string) bool {
	for _, r := range roots {
		r = strings.TrimPrefix(r, "-")
		if rel, err := filepath.Rel(r, path); err == nil && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}
