// Command keepalive holds one mutual-TLS connection to a listener open across
// an event: it sends a request, waits until a file appears, then sends a
// second request on the very same connection. testenv/run.sh uses it to show
// that rotating the server certificate does not drop open keep-alive
// connections.
//
//	keepalive -addr 127.0.0.1:8443 -server-name localhost -ca ca.pem \
//	    -cert bob.crt -key bob.key -resume-file /tmp/rotated
//
// It prints "ready serial=<hex>" once the first request succeeded (the
// serial of the server certificate this connection saw), then
// "reused status=200 backend=<name>" after the second, and exits 0. Any
// failure, including the server closing the connection, exits 1 with the
// reason.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "keepalive: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keepalive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8443", "listener address")
	serverName := fs.String("server-name", "localhost", "SNI and the name the server certificate must hold")
	caFile := fs.String("ca", "", "CA bundle that signed the server certificate (required)")
	certFile := fs.String("cert", "", "client certificate (required)")
	keyFile := fs.String("key", "", "client key (required)")
	resume := fs.String("resume-file", "", "send the second request once this file exists (required)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *caFile == "" || *certFile == "" || *keyFile == "" || *resume == "" {
		return errors.New("-ca, -cert, -key and -resume-file are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cfg, err := clientTLS(*caFile, *certFile, *keyFile, *serverName)
	if err != nil {
		return err
	}
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	conn := nc.(*tls.Conn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	br := bufio.NewReader(conn)

	backend, err := get(conn, br, *serverName)
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
	fmt.Fprintf(stdout, "ready serial=%X backend=%s\n", serial, backend)

	if err := waitFile(ctx, *resume); err != nil {
		return err
	}
	backend, err = get(conn, br, *serverName)
	if err != nil {
		return fmt.Errorf("second request on the same connection: %w", err)
	}
	fmt.Fprintf(stdout, "reused status=200 backend=%s\n", backend)
	return nil
}

func clientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{pair},
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"}, // one request at a time on one connection
	}, nil
}

// get sends GET / on conn and returns the answering backend's name. It fails
// unless the answer is 200 and the server keeps the connection open.
func get(conn *tls.Conn, br *bufio.Reader, host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return "", err
	}
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, body)
	}
	if resp.Close {
		return "", errors.New("the server asked to close the connection")
	}
	return strings.TrimSpace(string(body)), nil
}

func waitFile(ctx context.Context, path string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
