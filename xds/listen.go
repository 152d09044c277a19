package xds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultAddress is loopback TCP: the xDS stream carries private keys.
const DefaultAddress = "127.0.0.1:18000"

// Security is how the xDS endpoint is protected.
type Security struct {
	// CertFile, KeyFile and ClientCAFile enable xDS mTLS: the server
	// presents CertFile and requires a client certificate that chains to a
	// CA in ClientCAFile. All three or none.
	CertFile, KeyFile, ClientCAFile string
	// Insecure allows plaintext on a non-loopback TCP address. Anyone who
	// can reach the port can then read every private key served.
	Insecure bool
}

func (s Security) mTLS() bool { return s.CertFile != "" || s.KeyFile != "" || s.ClientCAFile != "" }

// Listen opens the xDS endpoint at addr ("host:port" or "unix:///path") and
// returns it with the gRPC transport credentials to serve it with.
//
// It fails closed: a TCP address that is not loopback needs xDS mTLS or
// Insecure. A unix socket is created mode 0600 (inside a 0700 directory
// until its mode is set, so no umask and no race can expose it), after
// removing a stale socket left by a previous run; a path that is not a
// socket, or a socket someone is serving on, is never removed.
func Listen(addr string, sec Security) (net.Listener, credentials.TransportCredentials, error) {
	creds := insecure.NewCredentials()
	if sec.mTLS() {
		c, err := serverTLS(sec)
		if err != nil {
			return nil, nil, err
		}
		creds = credentials.NewTLS(c)
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" || !filepath.IsAbs(path) {
			return nil, nil, fmt.Errorf("xds address %q: want unix:///absolute/path", addr)
		}
		lis, err := listenUnix(path)
		if err != nil {
			return nil, nil, err
		}
		return lis, creds, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("xds address %q: %w (want host:port or unix:///path)", addr, err)
	}
	if !isLoopback(host) && !sec.mTLS() && !sec.Insecure {
		return nil, nil, fmt.Errorf("xds address %q is not loopback: the xDS stream carries private keys, so serving it on the network needs --xds-cert, --xds-key and --xds-client-ca (mTLS), or --insecure-xds to accept the risk", addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("xds: %w", err)
	}
	return lis, creds, nil
}

// isLoopback accepts loopback IP literals and "localhost" only: any other
// name may resolve elsewhere tomorrow, and "" or 0.0.0.0 is every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serverTLS(sec Security) (*tls.Config, error) {
	if sec.CertFile == "" || sec.KeyFile == "" || sec.ClientCAFile == "" {
		return nil, errors.New("xds mTLS needs all of --xds-cert, --xds-key and --xds-client-ca")
	}
	cert, err := tls.LoadX509KeyPair(sec.CertFile, sec.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("xds mTLS key pair %s, %s: %w", sec.CertFile, sec.KeyFile, err)
	}
	pemBytes, err := os.ReadFile(sec.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("xds mTLS client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("xds mTLS client CA %s: no PEM certificate found", sec.ClientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
	}, nil
}

// unixListener removes its socket file on Close: the socket was renamed
// into place, so the one net.UnixListener would unlink is long gone.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if rmErr := os.Remove(l.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}

// maxUnixPath is the longest unix socket path Linux binds: sun_path is 108
// bytes including the terminating NUL.
const maxUnixPath = 107

func listenUnix(path string) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Bind inside a private directory, set the mode, then rename into place:
	// the socket is never reachable with a umask-derived mode.
	// The temporary name is longer than path: check both against the
	// kernel's sun_path limit, or bind fails with a bare "invalid argument".
	if len(path) > maxUnixPath || len(filepath.Dir(path))+len("/.cps0123456789/s") > maxUnixPath {
		return nil, fmt.Errorf("xds socket %s: path too long: a unix socket path holds at most %d bytes, and certplane first binds it in a private directory beside it (%d bytes more); use a shorter path",
			path, maxUnixPath, len("/.cps0123456789/s")-len("/"+filepath.Base(path)))
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".cps")
	if err != nil {
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	lis.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		lis.Close()
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: lis, path: path}, nil
}

// Addr reports the socket's final path, not the temporary name it was bound
// under, so logs name the socket clients dial.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// removeStaleSocket removes path if it is a socket nobody accepts on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xds socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("xds socket %s: exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("xds socket %s: in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("xds socket %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("xds socket %s: remove stale socket: %w", path, err)
	}
	return nil
}
