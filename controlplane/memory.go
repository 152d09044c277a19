package controlplane

import (
	"runtime/debug"
	"time"

	"github.com/certplane/certplane/config"
)

// largeTrustBytes is the size of PEM trust material above which a push
// is followed by returning its garbage to the OS. A push of a store with a
// 1,000,000-serial CRL leaves about 46 MB per copy behind (the new CRL
// bundle, then each client's marshalled response); the runtime's
// background scavenger would hand that back over minutes, so the process's
// RSS would sit far above its live heap.
const largeTrustBytes = 8 << 20

// releaseDelay is how long after such a push the memory is released: long
// enough for the responses to be marshalled and sent, so the full GC of
// releaseMemory never delays a push.
const releaseDelay = 2 * time.Second

// trustBytes is the PEM size of every trust store of m.
func trustBytes(m *config.Model) int {
	n := 0
	for _, ts := range m.Trust {
		n += len(ts.CAPEM) + len(ts.CRLPEM)
	}
	return n
}

// releaseMemory runs a GC and returns freed memory to the OS.
func releaseMemory() { debug.FreeOSMemory() }
