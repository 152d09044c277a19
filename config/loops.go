package config

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Backends that point back into certplane. A request sent to one of the
// config's own listeners comes back through the same route (one request
// bounced 5,945 times before this check); only certain cases are reported:
// the same IP and port, or a loopback address (or "localhost") on the port
// of a listener bound to every interface. A host's other addresses and DNS
// names are not resolved here, so they are left to the data planes' loop
// detection (the via header, docs/resources.md).

// selfLoops returns, per listener of ds, a problem for every endpoint of a
// backend it routes to that is one of the listeners of ds (valid or not: a
// blocked listener may still be served in its last good version).
func (r *resolver) selfLoops(ds []listenerDef, files []*ConfigFile) map[string][]Problem {
	byPort := map[uint32][]listenerDef{} // a model may hold thousands of listeners
	for _, d := range ds {
		byPort[d.l.Port] = append(byPort[d.l.Port], d)
	}
	byBackend := map[string][]Problem{}
	for name, b := range r.m.Backends {
		for i, e := range b.Endpoints {
			for _, t := range byPort[e.Port] {
				if !reaches(e, t.l.Host, t.l.Port) {
					continue
				}
				cf := definingFile(files, name)
				byBackend[name] = append(byBackend[name], problemOf("", lineErr(cf.File, endpointLine(cf, name, i), fmt.Errorf(
					"backend %q: endpoint %s is listener %q of this config (%s, %s:%d): requests sent to it would loop back into certplane; point the backend at the application",
					name, e, t.l.Name, t.l.Address, t.cf.File, t.cf.lines[t.l.Name].item))))
			}
		}
	}
	out := map[string][]Problem{}
	for _, d := range ds {
		seen := map[string]bool{}
		for _, rt := range d.l.Routes {
			if !seen[rt.Backend] {
				seen[rt.Backend] = true
				out[d.l.Name] = append(out[d.l.Name], byBackend[rt.Backend]...)
			}
		}
	}
	return out
}

// adminLoops warns about every endpoint of a backend in use that is one of
// the admin endpoints (host:port, as --admin-address takes them): requests
// routed there would reach /status and /metrics, or Envoy's admin, instead
// of an application. An address that is not host:port is skipped.
func (r *resolver) adminLoops(files []*ConfigFile, admins []string) []Problem {
	var out []Problem
	names := make([]string, 0, len(r.m.Backends))
	for name := range r.m.Backends {
		if r.used["backend/"+name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, admin := range admins {
		host, portStr, err := net.SplitHostPort(admin)
		port, perr := strconv.ParseUint(portStr, 10, 16)
		if err != nil || perr != nil {
			continue
		}
		for _, name := range names {
			for i, e := range r.m.Backends[name].Endpoints {
				if reaches(e, host, uint32(port)) {
					cf := definingFile(files, name)
					out = append(out, problemOf("", lineErr(cf.File, endpointLine(cf, name, i), fmt.Errorf(
						"backend %q: endpoint %s is an admin endpoint (--admin-address %s): requests routed to it would reach an admin interface instead of an application",
						name, e, admin))))
				}
			}
		}
	}
	return out
}

// reaches reports whether a connection to e certainly arrives at a socket
// bound to host:port. host is an IP literal, "localhost", or "" or an
// unspecified address for every interface (which the bundled proxy binds
// dual-stack, so both loopbacks reach it).
func reaches(e Endpoint, host string, port uint32) bool {
	if e.Port != port {
		return false
	}
	dst, ok := loopbackOrIP(e.Host)
	if !ok {
		return false
	}
	if host == "" {
		return dst.IsLoopback()
	}
	bound, ok := loopbackOrIP(host)
	if !ok {
		return false
	}
	return dst == bound || bound.IsUnspecified() && dst.IsLoopback()
}

// loopbackOrIP parses an IP literal, or takes "localhost" for 127.0.0.1 (as
// Envoy's V4_PREFERRED lookup does); any other name is unknown here.
func loopbackOrIP(host string) (netip.Addr, bool) {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// definingFile returns the file that defines the valid backend name.
func definingFile(files []*ConfigFile, name string) *ConfigFile {
	for _, cf := range files {
		for _, b := range cf.Backends {
			if b.Name == name {
				return cf
			}
		}
	}
	return &ConfigFile{lines: map[string]*itemLines{}} // unreachable for a model's backend
}

// endpointLine is the line of endpoint i of backend name in cf.
func endpointLine(cf *ConfigFile, name string, i int) int {
	lines := cf.lines["backend/"+name]
	if lines == nil {
		return 0
	}
	if i < len(lines.endpointLine) {
		return lines.endpointLine[i]
	}
	return lines.item
}

func (e Endpoint) String() string {
	return net.JoinHostPort(e.Host, strconv.FormatUint(uint64(e.Port), 10))
}
