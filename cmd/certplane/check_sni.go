package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/certplane/certplane/config"
)

// printCheckServerNames says which TLS server names choose l, and, on a
// shared address, which Host names l answers 421 (domain fronting).
func printCheckServerNames(w io.Writer, l *config.Listener) {
	switch {
	case len(l.ServerNames) > 0:
		fmt.Fprintf(w, "  server names: %s", strings.Join(l.ServerNames, ", "))
		if !l.SharedAddress {
			fmt.Fprint(w, " (other or no SNI: refused)")
		}
	case l.SharedAddress:
		fmt.Fprint(w, "  server names: any other, or none (the default of its shared address)")
	default:
		return
	}
	if len(l.PeerServerNames) > 0 {
		fmt.Fprintf(w, "; 421 for a Host of the other listeners on %s: %s", l.Address, strings.Join(l.PeerServerNames, ", "))
	}
	fmt.Fprintln(w)
}
