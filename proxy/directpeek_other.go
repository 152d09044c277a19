//go:build !unix

package proxy

import "net"

// idleConnUsable cannot peek without blocking here; a closed connection is
// caught by the retry in directTransport.RoundTrip.
func idleConnUsable(net.Conn) bool { return true }
