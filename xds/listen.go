package xds

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/certplane/certplane/envoy"
)

// DefaultAddress is serve's xDS endpoint unless told otherwise: a mode-0600
// unix socket, because the xDS stream carries every private key served and a
// socket, unlike a TCP port, has an owner.
const DefaultAddress = envoy.DefaultXDSAddress

// DefaultSocketMode lets only the socket's owner connect.
const DefaultSocketMode fs.FileMode = 0o600

// Security is how the xDS endpoint is protected.
type Security struct {
	// CertFile, KeyFile and ClientCAFile enable xDS mTLS: the server
	// presents CertFile and requires a client certificate that chains to a
	// CA in ClientCAFile. All three or none.
	CertFile, KeyFile, ClientCAFile string
	// ClientCRLFiles hold CRLs (PEM or DER) of the CAs in ClientCAFile,
	// which may hold X509 CRL blocks of its own, as Envoy's trusted_ca may.
	// With any CRL, every CA needs one and every handshake is checked
	// against the current files (see clientAuth).
	ClientCRLFiles []string
	// Insecure allows plaintext on a TCP address, loopback included. Any
	// process that can connect can then read every private key served.
	Insecure bool
	// SocketMode is the unix socket's permission bits; zero means 0600.
	// Group bits let the socket's group connect; bits for other users are
	// refused.
	SocketMode fs.FileMode
	// SocketGroup owns the unix socket: a group name or numeric id. Empty
	// keeps the process's group.
	SocketGroup string
	// Logger receives client-certificate refusals and CRL reloads; nil
	// discards them.
	Logger *slog.Logger
}

func (s Security) mTLS() bool { return s.CertFile != "" || s.KeyFile != "" || s.ClientCAFile != "" }

// Listen opens the xDS endpoint at addr ("unix:///path" or "host:port") and
// returns it with the gRPC transport credentials to serve it with.
//
// It fails closed. Plaintext TCP, even on loopback, needs Insecure: any
// local process can connect to a loopback port. A unix socket is created
// with SocketMode (inside a private directory until its mode is set, so no
// umask and no race can expose it), in a parent directory that Listen
// creates (0700) when missing and refuses when other users may write to it;
// a stale socket is removed only when it is a socket nobody answers on.
func Listen(addr string, sec Security) (net.Listener, credentials.TransportCredentials, error) {
	if len(sec.ClientCRLFiles) > 0 && !sec.mTLS() {
		return nil, nil, errors.New("xds client CRLs need xDS mTLS (--xds-cert, --xds-key and --xds-client-ca)")
	}
	var auth *clientAuth
	creds := insecure.NewCredentials()
	if sec.mTLS() {
		var err error
		if auth, err = newClientAuth(sec); err != nil {
			return nil, nil, err
		}
		creds = auth.credentials()
	}
	lis, err := listenAddr(addr, sec)
	if err != nil {
		return nil, nil, err
	}
	if auth != nil {
		lis = auth.watch(lis)
	}
	return lis, creds, nil
}

func listenAddr(addr string, sec Security) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" || !filepath.IsAbs(path) {
			return nil, fmt.Errorf("xds address %q: want unix:///absolute/path", addr)
		}
		mode, gid, err := socketAccess(sec)
		if err != nil {
			return nil, err
		}
		return listenUnix(path, mode, gid)
	}
	if (sec.SocketMode != 0 && sec.SocketMode != DefaultSocketMode) || sec.SocketGroup != "" {
		return nil, fmt.Errorf("xds address %q: a socket mode and group apply to a unix socket only", addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("xds address %q: %w (want unix:///path or host:port)", addr, err)
	}
	if !sec.mTLS() && !sec.Insecure {
		return nil, plaintextRefused(addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	return lis, nil
}

// plaintextRefused says why plaintext TCP is refused and the ways out.
func plaintextRefused(addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	if isLoopback(host) {
		return fmt.Errorf("xds address %q is plaintext TCP: any local user could connect and read every private key served (a loopback port has no owner; a unix socket has one); use the default unix socket (%s), xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk", addr, DefaultAddress)
	}
	return fmt.Errorf("xds address %q is plaintext TCP off loopback: anyone who can reach the port could read every private key served; use xDS mTLS (--xds-cert, --xds-key, --xds-client-ca), or --insecure-xds to accept the risk", addr)
}

// PlaintextExposure names who can read the keys served at addr when it is
// plaintext TCP without mTLS (serve logs it at start); "" otherwise.
func PlaintextExposure(addr string, sec Security) string {
	if strings.HasPrefix(addr, "unix://") || sec.mTLS() {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if isLoopback(host) {
		return "any local user (a loopback port has no owner)"
	}
	return "anyone who can reach " + addr
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

// socketAccess resolves the socket's mode and group (-1: the process's).
func socketAccess(sec Security) (fs.FileMode, int, error) {
	mode := sec.SocketMode
	if mode == 0 {
		mode = DefaultSocketMode
	}
	if mode&^fs.ModePerm != 0 || mode&0o007 != 0 {
		return 0, 0, fmt.Errorf("xds socket mode %04o: other users must not connect (the stream carries every private key); use 0600, or 0660 with a group", mode)
	}
	if mode&0o600 != 0o600 {
		return 0, 0, fmt.Errorf("xds socket mode %04o: the owner needs read and write", mode)
	}
	if sec.SocketGroup == "" {
		return mode, -1, nil
	}
	gid, err := lookupGroup(sec.SocketGroup)
	if err != nil {
		return 0, 0, err
	}
	return mode, gid, nil
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.ParseUint(g, 10, 31); err == nil {
		return int(n), nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("xds socket group %q: %w", g, err)
	}
	n, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("xds socket group %q: gid %q: %w", g, grp.Gid, err)
	}
	return n, nil
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

// Addr reports the socket's final path, not the temporary name it was bound
// under, so logs name the socket clients dial.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// maxUnixPath is the longest unix socket path Linux binds: sun_path is 108
// bytes including the terminating NUL.
const maxUnixPath = 107

// tmpSocket is the name a socket is first bound under, beside its path.
const tmpSocket = "/.cps0123456789/s"

func listenUnix(path string, mode fs.FileMode, gid int) (net.Listener, error) {
	// The temporary name is longer than path: check both against the
	// kernel's sun_path limit, or bind fails with a bare "invalid argument".
	if len(path) > maxUnixPath || len(filepath.Dir(path))+len(tmpSocket) > maxUnixPath {
		return nil, fmt.Errorf("xds socket %s: path too long: a unix socket path holds at most %d bytes, and certplane first binds it in a private directory beside it (%d bytes more); use a shorter path",
			path, maxUnixPath, len(tmpSocket)-len("/"+filepath.Base(path)))
	}
	if err := socketDir(path, mode, gid); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Bind inside a private directory, set the mode and group, then rename
	// into place: the socket is never reachable with a umask-derived mode.
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
	if err := setAccess(tmp, mode, gid); err != nil {
		lis.Close()
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		lis.Close()
		return nil, fmt.Errorf("xds socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: lis, path: path}, nil
}

func setAccess(path string, mode fs.FileMode, gid int) error {
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, mode)
}

// socketDir makes sure the socket's directory exists and that no other user
// can write to it: whoever can write there can replace the socket with one
// of their own. A missing directory is created 0700, or 0710 with the
// socket's group when that group may connect.
func socketDir(path string, mode fs.FileMode, gid int) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fi, err = makeSocketDir(path, dir, mode, gid)
	}
	if err != nil {
		return fmt.Errorf("xds socket %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("xds socket %s: %s is not a directory", path, dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("xds socket %s: its directory %s is writable by other users (mode %04o), who could replace the socket; use a directory only its owner may write to, such as the default %s", path, dir, fi.Mode().Perm(), filepath.Dir(envoy.DefaultXDSSocket))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("xds socket %s: its directory %s belongs to uid %d, neither root nor this process's user, who could replace the socket", path, dir, st.Uid)
	}
	return nil
}

func makeSocketDir(path, dir string, mode fs.FileMode, gid int) (fs.FileInfo, error) {
	dirMode, dirGID := fs.FileMode(0o700), -1
	if mode&0o060 != 0 {
		// Members of the socket's group must be able to reach it.
		dirMode, dirGID = 0o710, gid
	}
	err := os.Mkdir(dir, dirMode)
	if errors.Is(err, fs.ErrExist) {
		// Made by someone else meanwhile: checked as any existing one.
		return os.Stat(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot create its directory: %w; create %s (systemd: RuntimeDirectory=%s), run serve as a user allowed to, or choose another socket with --xds-address unix:///path",
			err, dir, filepath.Base(dir))
	}
	// Mkdir applied the umask: set the mode exactly.
	if err := setAccess(dir, dirMode, dirGID); err != nil {
		return nil, err
	}
	return os.Stat(dir)
}

// removeStaleSocket removes path if it is a socket nobody accepts on. It
// never follows a symbolic link and never removes anything else.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xds socket %s: %w", path, err)
	}
	switch fi.Mode().Type() {
	case fs.ModeSocket:
	case fs.ModeSymlink:
		return fmt.Errorf("xds socket %s: is a symbolic link; refusing to follow or replace it", path)
	default:
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

// serverTLS is the fixed part of the xDS server's TLS config: its
// certificate, TLS 1.2 or later, and HTTP/2 for gRPC. clientAuth adds the
// client verification.
func serverTLS(sec Security) (*tls.Config, error) {
	if sec.CertFile == "" || sec.KeyFile == "" || sec.ClientCAFile == "" {
		return nil, errors.New("xds mTLS needs all of --xds-cert, --xds-key and --xds-client-ca")
	}
	cert, err := tls.LoadX509KeyPair(sec.CertFile, sec.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("xds mTLS key pair %s, %s: %w", sec.CertFile, sec.KeyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
	}, nil
}

// stoppingListener runs stop once when it is closed.
type stoppingListener struct {
	net.Listener
	stop func()
}

func (l stoppingListener) Close() error {
	l.stop()
	return l.Listener.Close()
}

func newStoppingListener(lis net.Listener, stop func()) net.Listener {
	return stoppingListener{Listener: lis, stop: sync.OnceFunc(stop)}
}
