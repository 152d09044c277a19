package envoy

import (
	"net"
	"strconv"
	"strings"

	"github.com/certplane/certplane/config"
)

// sharedListenerPrefix starts the name of the one Listener serving several
// config listeners that share an address. Config listener names are
// [a-z0-9-]+, so no config listener can take such a name.
const sharedListenerPrefix = "shared/"

// SharedListenerName names the Listener of a shared address: it follows
// the address only, so adding, removing or changing one of the listeners
// on it never renames (and so never drains) the Listener.
func SharedListenerName(host string, port uint32) string {
	return sharedListenerPrefix + net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// IsSharedListenerName reports whether name is a SharedListenerName:
// Listeners of that name built for different config listeners are parts
// of one, to be joined by MergeListeners.
func IsSharedListenerName(name string) bool { return strings.HasPrefix(name, sharedListenerPrefix) }

// ListenerName is the name of the Listener that serves l: its own name,
// or its address's when it shares the address with other listeners.
func ListenerName(l *config.Listener) string {
	if l.SharedAddress {
		return SharedListenerName(l.Host, l.Port)
	}
	return l.Name
}

// chainPlan is one filter chain to build: the certificate it presents and
// the server names it matches (none: it matches any).
type chainPlan struct {
	cert  string
	names []string
}

// planChains decides l's filter chains from certs, the DNS SANs of each of
// l's certificates (serverNames; nil entries with one certificate):
//   - with server_names, each name goes to the first certificate whose SANs
//     cover it exactly, else to the first one covering it by wildcard, else
//     to the default (first) certificate; a certificate with no name gets no
//     chain, and there is no default chain: other names find no listener.
//   - without, one certificate is one chain matching any name; several are
//     matched by their SANs with a default chain for other names (as before
//     listeners could share an address). On a shared address, a SAN that
//     another listener's server_names claim is left to that listener.
func planChains(l *config.Listener, sans [][]string) (plans []chainPlan, withDefault bool) {
	if len(l.ServerNames) > 0 {
		byCert := make([][]string, len(l.Certificates))
		for _, n := range l.ServerNames {
			i := coveringCert(n, sans)
			byCert[i] = append(byCert[i], n)
		}
		for i, c := range l.Certificates {
			if len(byCert[i]) > 0 {
				plans = append(plans, chainPlan{cert: c, names: byCert[i]})
			}
		}
		return plans, false
	}
	if len(l.Certificates) == 1 {
		return []chainPlan{{cert: l.Certificates[0]}}, false
	}
	for i, c := range l.Certificates {
		var names []string
		for _, s := range sans[i] {
			if !claimedByPeer(s, l.PeerServerNames) {
				names = append(names, s)
			}
		}
		if len(names) > 0 {
			plans = append(plans, chainPlan{cert: c, names: names})
		}
	}
	if len(plans) == 0 {
		// Every SAN is a peer's: the default certificate's chain takes
		// any other name, as a default_filter_chain would.
		return []chainPlan{{cert: l.Certificates[0]}}, false
	}
	return plans, true
}

// coveringCert is the index of the certificate that serves name: exact
// SAN first, then wildcard SAN, else the first certificate.
func coveringCert(name string, sans [][]string) int {
	for i, list := range sans {
		for _, s := range list {
			if s == name {
				return i
			}
		}
	}
	for i, list := range sans {
		for _, s := range list {
			if strings.HasPrefix(s, "*.") && !strings.HasPrefix(name, "*.") && config.ServerNameMatches(s, name) && !strings.Contains(strings.TrimSuffix(name, s[1:]), ".") {
				return i // a certificate wildcard covers one label (RFC 6125)
			}
		}
	}
	return 0
}

// claimedByPeer reports whether SNI san would reach another listener of
// the address in Envoy's matching (exact name first, then the longest
// wildcard), so the default listener's certificate chains must not match
// it.
func claimedByPeer(san string, peers []string) bool {
	for _, p := range peers {
		// An exact SAN under p, or a wildcard SAN whose domain is: Envoy
		// would prefer the SAN's chain for names p claims.
		if p == san || config.ServerNameMatches(p, strings.TrimPrefix(san, "*.")) {
			return true
		}
	}
	return false
}
