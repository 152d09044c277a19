package config_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/certplane/certplane/config"
)

// A backend endpoint that is certainly one of the config's own listeners
// would send every request back into certplane (one request bounced 5,945
// times): it blocks every listener that routes to it, naming the backend,
// the listener and both places.
func TestLoadRefusesSelfLoops(t *testing.T) {
	const loopText = `$ROOT/config/web.yaml:12: backend "app": endpoint %s is listener %q of this config (%s, %s): requests sent to it would loop back into certplane; point the backend at the application`
	webAt := "$ROOT/config/web.yaml:2"
	otherAt := "$ROOT/config/other.yaml:2"
	for _, tc := range []struct {
		name, endpoint string
		want           []string // problems; nil: none, both listeners served
	}{
		{"loopback to a wildcard listener", "127.0.0.1:8443",
			[]string{"web| " + fmt.Sprintf(loopText, "127.0.0.1:8443", "web", "0.0.0.0:8443", webAt)}},
		{"any loopback address to a wildcard listener", "127.0.0.9:8443",
			[]string{"web| " + fmt.Sprintf(loopText, "127.0.0.9:8443", "web", "0.0.0.0:8443", webAt)}},
		{"IPv6 loopback to a wildcard listener", "[::1]:8443",
			[]string{"web| " + fmt.Sprintf(loopText, "[::1]:8443", "web", "0.0.0.0:8443", webAt)}},
		{"localhost to a wildcard listener", "localhost:8443",
			[]string{"web| " + fmt.Sprintf(loopText, "localhost:8443", "web", "0.0.0.0:8443", webAt)}},
		{"the address of another listener", "127.0.0.1:9443",
			[]string{"web| " + fmt.Sprintf(loopText, "127.0.0.1:9443", "other", "127.0.0.1:9443", otherAt)}},
		{"another loopback address than the listener's", "127.0.0.2:9443", nil},
		{"a host address on the listener's port", "10.0.0.9:8443", nil},
		{"a DNS name on the listener's port", "app.internal:8443", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.editWeb(`"10.0.0.1:8080"`, `"`+tc.endpoint+`"`)
			m := f.load()
			assertProblems(t, "problems", f.render(m.Problems), tc.want)
			present := []string{"other", "web"}
			if tc.want != nil {
				present = []string{"other"}
			}
			if got := listenerNames(m); !slices.Equal(got, present) {
				t.Errorf("listeners in model = %v, want %v", got, present)
			}
		})
	}
}

// A listener whose own backend points at its own address is blocked too.
func TestLoadRefusesLoopInOtherFile(t *testing.T) {
	f := newFixture(t)
	f.tr.WriteConfig("other.yaml", `listeners:
  - name: other
    address: 127.0.0.1:9443
    certificates: [other]
    routes:
      - {path_prefix: /, backend: plain}
backends:
  - name: plain
    endpoints:
      - "10.0.0.2:8080"
      - "127.0.0.1:9443"
`)
	m := f.load()
	assertProblems(t, "problems", f.render(m.Problems), []string{
		`other| $ROOT/config/other.yaml:11: backend "plain": endpoint 127.0.0.1:9443 is listener "other" of this config (127.0.0.1:9443, $ROOT/config/other.yaml:2): requests sent to it would loop back into certplane; point the backend at the application`,
	})
	if got := listenerNames(m); !slices.Equal(got, []string{"web"}) {
		t.Errorf("listeners in model = %v, want [web]", got)
	}
}

// A backend on an admin endpoint the data plane runs is a warning: the
// listener is still served.
func TestLoadWarnsAboutAdminEndpoints(t *testing.T) {
	f := newFixture(t)
	f.editWeb(`"10.0.0.1:8080"`, `"localhost:18001"`)
	m, err := config.Loader{AdminAddresses: []string{"127.0.0.1:18001", "unix:///run/admin.sock", ":9"}}.Load(f.tr.Certs, f.tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	assertProblems(t, "problems", f.render(m.Problems), nil)
	assertProblems(t, "warnings", f.render(m.Warnings), []string{
		`| $ROOT/config/web.yaml:12: backend "app": endpoint localhost:18001 is an admin endpoint (--admin-address 127.0.0.1:18001): requests routed to it would reach an admin interface instead of an application`,
	})
	if got := listenerNames(m); !slices.Equal(got, []string{"other", "web"}) {
		t.Errorf("listeners in model = %v", got)
	}
	// Every interface: any loopback address reaches it.
	f.editWeb(`"10.0.0.1:8080"`, `"[::1]:9"`)
	m, err = config.Loader{AdminAddresses: []string{":9"}}.Load(f.tr.Certs, f.tr.Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != 1 || len(m.Problems) != 0 {
		t.Errorf("problems %v, warnings %v", m.Problems, m.Warnings)
	}
}
