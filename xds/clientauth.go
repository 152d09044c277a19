package xds

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/certplane/certplane/config"
)

// recheckEvery is how often the xDS client CA and CRL files are looked at
// between handshakes, so that a revocation also closes open streams.
var recheckEvery = time.Second

// clientAuth verifies xDS client certificates. The CA file and the CRL
// files are admitted as a trust store is (config.ParseTrustStore: CA
// certificates only, CRLs current and signed by a CA of the bundle), and
// verified at each handshake by crypto/x509 and the CRLs' serial index
// (clientVerifier, Envoy's semantics: full-chain CRL checking, an expired
// CRL fails closed).
//
// Every handshake first compares the files' identities (size, times,
// inode) with those loaded, and reloads on any change: a new CRL applies to
// the very next handshake. A file that cannot be read or admitted fails
// closed: every handshake is refused until it is fixed. A watch loop does
// the same between handshakes and closes the connections of clients that
// the current files no longer accept.
type clientAuth struct {
	caFile   string
	crlFiles []string
	base     *tls.Config
	log      *slog.Logger
	now      func() time.Time
	every    time.Duration // recheckEvery when built

	mu     sync.Mutex
	stamps []fileStamp
	state  *authState
	conns  map[*authConn]struct{}
}

// authState is one loaded version of the files; err set means refuse all.
type authState struct {
	verifier *clientVerifier
	config   *tls.Config
	cas      []*x509.Certificate
	// expires is the earliest CRL nextUpdate: open connections are checked
	// again then.
	expires time.Time
	err     error
}

func newClientAuth(sec Security) (*clientAuth, error) {
	base, err := serverTLS(sec)
	if err != nil {
		return nil, err
	}
	log := sec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &clientAuth{
		caFile: sec.ClientCAFile, crlFiles: sec.ClientCRLFiles, base: base,
		log: log.With("component", "xds-auth"), now: time.Now, every: recheckEvery, conns: map[*authConn]struct{}{},
	}
	// Unusable files at start are an error, not a server that refuses all.
	if st := a.current(); st.err != nil {
		return nil, st.err
	}
	return a, nil
}

// fileStamp identifies one version of a file without reading it.
type fileStamp struct {
	path             string
	missing          bool
	size             int64
	mtimeNS, ctimeNS int64
	dev, ino         uint64
}

func stampFiles(paths []string) []fileStamp {
	out := make([]fileStamp, len(paths))
	for i, p := range paths {
		out[i].path = p
		fi, err := os.Stat(p)
		if err != nil {
			out[i].missing = true
			continue
		}
		out[i].size, out[i].mtimeNS = fi.Size(), fi.ModTime().UnixNano()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			out[i].dev, out[i].ino = uint64(st.Dev), st.Ino
			out[i].ctimeNS = st.Ctim.Nano()
		}
	}
	return out
}

func (a *clientAuth) files() []string { return append([]string{a.caFile}, a.crlFiles...) }

// current returns the state of the files as they are now, reloading them
// when they changed since the last look.
func (a *clientAuth) current() *authState {
	stamps := stampFiles(a.files())
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != nil && slices.Equal(stamps, a.stamps) {
		return a.state
	}
	a.stamps = stamps
	a.state = a.load()
	if a.state.err != nil {
		a.log.Error("xds client CA or CRL unusable; refusing every xDS client", "err", a.state.err.Error())
	} else {
		a.log.Info("xds client trust loaded", "ca_file", a.caFile, "crl_files", a.crlFiles, "cas", len(a.state.cas))
	}
	return a.state
}

func (a *clientAuth) load() *authState {
	ts, err := loadClientTrust(a.caFile, a.crlFiles, a.log)
	if err != nil {
		return &authState{err: err}
	}
	v, err := newClientVerifier(ts, a.now)
	if err != nil {
		return &authState{err: fmt.Errorf("xds client CA %s: %w", a.caFile, err)}
	}
	cfg := a.base.Clone()
	cfg.ClientAuth = v.clientAuth()
	cfg.ClientCAs = v.roots
	st := &authState{verifier: v, config: cfg, cas: ts.CAs}
	for _, c := range ts.CRLs {
		if !c.NextUpdate.IsZero() && (st.expires.IsZero() || c.NextUpdate.Before(st.expires)) {
			st.expires = c.NextUpdate
		}
	}
	return st
}

// expired reports whether a CRL of st has expired at now, in whole seconds
// as the verifier (and BoringSSL) compares times.
func (st *authState) expired(now time.Time) bool {
	return !st.expires.IsZero() && now.Truncate(time.Second).After(st.expires)
}

// loadClientTrust reads and admits the xDS client CA file and the CRL files
// as one trust store. A CRL file may be PEM or DER whatever its name; it
// holds CRLs only. With any CRL, every CA needs one: verification checks
// the whole chain, so a CA without a CRL would refuse all its clients.
func loadClientTrust(caFile string, crlFiles []string, log *slog.Logger) (*config.TrustStore, error) {
	caData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("xds client CA: %w", err)
	}
	files := map[string][]byte{caFile: caData}
	for _, f := range crlFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("xds client CRL: %w", err)
		}
		blocks, err := config.CRLFilePEM(f, data)
		if err != nil {
			return nil, err
		}
		files[f] = blocks
	}
	ts, warnings, err := config.ParseTrustStore("xds-client-ca", files)
	for _, w := range warnings {
		log.Warn("xds client CA", "warning", w.Error())
	}
	if err != nil {
		return nil, err
	}
	if len(ts.CRLs) == 0 {
		return ts, nil
	}
	for _, ca := range ts.CAs {
		if !hasCRL(ca, ts.CRLs) {
			return nil, fmt.Errorf("xds client CA %s: CA %q has no CRL among %s and the CRL blocks of the CA file: with CRLs, every CA of a chain needs one (Envoy's full-chain checking), or all its clients are refused", caFile, ca.Subject, crlFiles)
		}
	}
	return ts, nil
}

// hasCRL: admission served only CRLs signed by a CA of the store, so a
// CRL under ca's subject is ca's.
func hasCRL(ca *x509.Certificate, crls []config.CRL) bool {
	for _, c := range crls {
		if bytes.Equal(c.RawIssuer, ca.RawSubject) {
			return true
		}
	}
	return false
}

// credentials are gRPC TLS credentials whose every handshake uses the
// current state, and which track connections for recheck.
func (a *clientAuth) credentials() credentials.TransportCredentials {
	return authCreds{TransportCredentials: credentials.NewTLS(&tls.Config{GetConfigForClient: a.configFor}), a: a}
}

// configFor is the handshake's TLS config: the current state's, with a
// verifier that logs the refusal and the peer.
func (a *clientAuth) configFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	st := a.current()
	if st.err != nil {
		return nil, st.err
	}
	peer := remoteAddr(hello.Conn)
	cfg := st.config.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if f := st.verifier.verify(cs.PeerCertificates); f != nil {
			a.log.Warn("xds client refused", "reason", f.reason, "err", f.Error(), "subject", subject(cs.PeerCertificates), "peer", peer)
			return f
		}
		return nil
	}
	return cfg, nil
}

func remoteAddr(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}

func subject(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return ""
	}
	return chain[0].Subject.String()
}

// watch starts the recheck loop; closing lis stops it and waits for it.
func (a *clientAuth) watch(lis net.Listener) net.Listener {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		a.recheckLoop(stop)
	}()
	return newStoppingListener(lis, func() { close(stop); <-done })
}

// recheckLoop checks open connections again whenever the files change, and
// once more when a CRL's nextUpdate passes.
func (a *clientAuth) recheckLoop(stop <-chan struct{}) {
	t := time.NewTicker(a.every)
	defer t.Stop()
	var checked *authState
	expiryChecked := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		st := a.current()
		expired := st.expired(a.now())
		if st != checked {
			checked, expiryChecked = st, false
		} else if expiryChecked || !expired {
			continue
		}
		expiryChecked = expired
		a.recheck(st)
	}
}

// recheck closes every tracked connection that st refuses.
func (a *clientAuth) recheck(st *authState) {
	a.mu.Lock()
	conns := slices.Collect(maps.Keys(a.conns))
	a.mu.Unlock()
	for _, c := range conns {
		err := st.err
		if err == nil {
			if f := st.verifier.verify(c.peer); f != nil {
				err = f
			}
		}
		if err != nil {
			a.log.Warn("xds connection closed: client certificate no longer accepted", "err", err.Error(), "subject", subject(c.peer), "peer", remoteAddr(c))
			c.Close()
		}
	}
}

// authCreds wraps the TLS credentials to track each authenticated
// connection with its peer chain.
type authCreds struct {
	credentials.TransportCredentials
	a *clientAuth
}

func (c authCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	ti, ok := info.(credentials.TLSInfo)
	if !ok {
		conn.Close()
		return nil, nil, errors.New("xds: TLS handshake without TLS info")
	}
	return c.a.track(conn, ti.State.PeerCertificates), info, nil
}

func (c authCreds) Clone() credentials.TransportCredentials {
	return authCreds{TransportCredentials: c.TransportCredentials.Clone(), a: c.a}
}

// authConn is a connection tracked until it is closed.
type authConn struct {
	net.Conn
	peer []*x509.Certificate
	a    *clientAuth
	once sync.Once
}

func (a *clientAuth) track(conn net.Conn, peer []*x509.Certificate) *authConn {
	c := &authConn{Conn: conn, peer: peer, a: a}
	a.mu.Lock()
	a.conns[c] = struct{}{}
	a.mu.Unlock()
	return c
}

func (c *authConn) Close() error {
	c.once.Do(func() {
		c.a.mu.Lock()
		delete(c.a.conns, c)
		c.a.mu.Unlock()
	})
	return c.Conn.Close()
}
