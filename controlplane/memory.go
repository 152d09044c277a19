package controlplane

import (
	"runtime/debug"

	"github.com/certplane/certplane/config"
)

// largeTrustBytes is the size of PEM trust material above which a reload
// returns its garbage to the OS at once. Parsing a CRL of 1,000,000 serials
// allocates about 1 GB that is garbage a moment later; the runtime's
// background scavenger would hand it back over minutes, so the process's
// RSS would sit far above its live heap.
const largeTrustBytes = 8 << 20

// trustBytes is the PEM size of every trust store of m.
func trustBytes(m *config.Model) int {
	n := 0
	for _, ts := range m.Trust {
		n += len(ts.CAPEM) + len(ts.CRLPEM)
	}
	return n
}

// releaseMemory runs a GC and returns freed memory to the OS when m's trust
// material is large; it costs one full GC, small beside parsing that much.
func releaseMemory(m *config.Model) {
	if trustBytes(m) > largeTrustBytes {
		debug.FreeOSMemory()
	}
}
