package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Several listeners on one address (HAProxy crt-list, nginx server blocks):
// listeners written with exactly the same address share one socket, and the
// client's TLS server name (SNI) chooses among them before the handshake,
// so each keeps its own certificates, client authentication and routes.
//
// The rules, checked here so that `certplane check` explains them:
//   - their server_names are disjoint: no name a client can send matches two
//     of them. An exact name under another listener's wildcard counts as an
//     overlap, although Envoy would let the exact name win: refusing keeps
//     "which listener owns this Host" a plain membership test, the same for
//     the SNI choice and for the 421 answer to domain fronting, on both
//     data planes.
//   - at most one of them omits server_names: it gets the clients that send
//     no SNI or a name no other listener claims.
//
// Wildcards are one label, "*.example.com", and match as Envoy's filter
// chain matcher does: any name ending in ".example.com", deeper ones too.

// convertServerNames checks and normalizes a listener's server_names.
func convertServerNames(raw *[]string, line int) ([]string, *itemErr) {
	if raw == nil {
		return nil, nil
	}
	if len(*raw) == 0 {
		return nil, errAt(line, "server_names: the list is empty; omit server_names for a listener that takes any server name")
	}
	out := make([]string, 0, len(*raw))
	for i, n := range *raw {
		name := strings.ToLower(n)
		if err := checkServerName(name); err != nil {
			return nil, errAt(line, "server_names[%d] %q: %v", i, n, err)
		}
		if slices.Contains(out, name) {
			return nil, errAt(line, "server_names: %q is listed twice", n)
		}
		out = append(out, name)
	}
	for i, a := range out {
		for _, b := range out[:i] {
			if serverNamesOverlap(a, b) {
				return nil, errAt(line, "server_names: %q is already covered by %q", a, b)
			}
		}
	}
	return out, nil
}

// checkServerName accepts a DNS name or a one-label wildcard of a name of
// at least two labels, lower-case, without a trailing dot.
func checkServerName(name string) error {
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("write it without the trailing dot")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("an IP address is never sent as a TLS server name")
	}
	base := name
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		base = rest
		if !strings.Contains(base, ".") {
			return fmt.Errorf("a wildcard needs at least two labels after \"*.\" (like *.example.com)")
		}
	}
	if strings.Contains(base, "*") {
		return fmt.Errorf("a wildcard is only \"*.\" followed by a DNS name (like *.example.com)")
	}
	if !validDNSName(base) {
		return fmt.Errorf("not a DNS name")
	}
	return nil
}

// ServerNameMatches reports whether a client's server name (or Host,
// lower-case, without port or trailing dot) matches server_names entry
// pattern: equal, or under a wildcard's domain.
func ServerNameMatches(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return pattern == name
}

// serverNamesOverlap reports whether some name a client could send matches
// both entries.
func serverNamesOverlap(a, b string) bool {
	if a == b || ServerNameMatches(a, b) || ServerNameMatches(b, a) {
		return true
	}
	// Two wildcards overlap when one's domain is under the other's:
	// x.p.example.com matches both *.p.example.com and *.example.com.
	da, wa := strings.CutPrefix(a, "*.")
	db, wb := strings.CutPrefix(b, "*.")
	return wa && wb && (ServerNameMatches(a, db) || ServerNameMatches(b, da))
}

// sameAddress reports whether two listeners bind exactly the same address.
func sameAddress(a, b *Listener) bool {
	if a.Port != b.Port {
		return false
	}
	x, err1 := netip.ParseAddr(a.Host)
	y, err2 := netip.ParseAddr(b.Host)
	if err1 != nil || err2 != nil {
		return a.Host == b.Host
	}
	return x.Unmap() == y.Unmap()
}

// sharing is what the resolver learns about the listeners of shared
// addresses: per listener, its peers' server names and its problems.
type sharing struct {
	shared   map[string]bool
	peers    map[string][]string // by listener: the other listeners' server_names, sorted
	problems map[string][]Problem
}

// sharedAddresses groups the listeners of ds (every listener that
// converted, valid or not: one kept at its last good version still holds
// its names on the socket) by exact address, and checks each group.
func (r *resolver) sharedAddresses(ds []listenerDef) sharing {
	s := sharing{shared: map[string]bool{}, peers: map[string][]string{}, problems: map[string][]Problem{}}
	var groups [][]listenerDef
	for _, d := range ds {
		i := slices.IndexFunc(groups, func(g []listenerDef) bool { return sameAddress(g[0].l, d.l) })
		if i < 0 {
			groups = append(groups, []listenerDef{d})
			continue
		}
		groups[i] = append(groups[i], d)
	}
	where := func(d listenerDef) string {
		return fmt.Sprintf("%s:%d", d.cf.File, d.cf.lines[d.l.Name].names)
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		for _, a := range g {
			s.shared[a.l.Name] = true
			var peers []string
			for _, b := range g {
				if a.l.Name == b.l.Name {
					continue
				}
				peers = append(peers, b.l.ServerNames...)
				if len(a.l.ServerNames) == 0 && len(b.l.ServerNames) == 0 {
					s.problems[a.l.Name] = append(s.problems[a.l.Name], problemOf("", lineErr(a.cf.File, a.cf.lines[a.l.Name].names, fmt.Errorf(
						"listener %q: shares address %s with listener %q (%s), and neither sets server_names: at most one listener per address may omit them (it takes clients with no or an unclaimed server name); give one of them server_names",
						a.l.Name, a.l.Address, b.l.Name, where(b)))))
				}
				s.problems[a.l.Name] = append(s.problems[a.l.Name], deadRouteHosts(a, b, where(b))...)
				if x, y, ok := firstOverlap(a.l.ServerNames, b.l.ServerNames); ok {
					s.problems[a.l.Name] = append(s.problems[a.l.Name], problemOf("", lineErr(a.cf.File, a.cf.lines[a.l.Name].names, fmt.Errorf(
						"listener %q: server name %q overlaps %q of listener %q (%s), which shares address %s: listeners on one address need disjoint server_names so that SNI chooses exactly one (an exact name under another listener's wildcard counts too)",
						a.l.Name, x, y, b.l.Name, where(b), a.l.Address))))
				}
			}
			sort.Strings(peers)
			s.peers[a.l.Name] = slices.Compact(peers)
		}
	}
	return s
}

// firstOverlap returns the first pair of entries of a and b that overlap.
func firstOverlap(a, b []string) (string, string, bool) {
	for _, x := range a {
		for _, y := range b {
			if serverNamesOverlap(x, y) {
				return x, y, true
			}
		}
	}
	return "", "", false
}

// deadRouteHosts refuses the routes of a whose host only names that b's
// server_names claim: SNI sends such clients to b, and a answers their
// Host 421 (domain fronting), so the route could never serve a request.
func deadRouteHosts(a, b listenerDef, bWhere string) []Problem {
	var out []Problem
	lines := a.cf.lines[a.l.Name]
	for i, rt := range a.l.Routes {
		if rt.Host == "" {
			continue
		}
		for _, n := range b.l.ServerNames {
			if n != rt.Host && !ServerNameMatches(n, strings.TrimPrefix(rt.Host, "*.")) {
				continue
			}
			line := lines.routes
			if i < len(lines.routeLine) {
				line = lines.routeLine[i]
			}
			out = append(out, problemOf("", lineErr(a.cf.File, line, fmt.Errorf(
				"listener %q: routes[%d]: host %q is listener %q's (server name %q, %s) on shared address %s: SNI sends those clients there, and this listener answers such a Host 421; move the route to listener %q",
				a.l.Name, i, rt.Host, b.l.Name, n, bWhere, a.l.Address, b.l.Name))))
			break
		}
	}
	return out
}
