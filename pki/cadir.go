package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/certplane/certplane/pemder"
)

// Files of a CA directory. The directory holds the CA's private key, so it
// is created 0700 and must never sit inside a watched certs/ tree.
const (
	CACertFile   = "ca.crt"         // the CA certificate, PEM
	CAKeyFile    = "ca.key"         // its private key, PKCS#8 PEM, mode 0600
	ChainFile    = "chain.pem"      // intermediates only: issuers above ca.crt, nearest first
	CRLStateFile = "crl-state.json" // revoked serials and the next CRL number
)

// CRLState is what a CA must remember between CRLs: which serials it revoked
// and when, and the number the next CRL takes (RFC 5280 5.2.3: CRL numbers
// only increase).
type CRLState struct {
	NextNumber *big.Int
	Revoked    []Revoked // sorted by serial
}

type crlStateJSON struct {
	NextNumber string         `json:"next_crl_number"`
	Revoked    []revokedEntry `json:"revoked"`
}

type revokedEntry struct {
	Serial string    `json:"serial"` // hex, as openssl prints it
	At     time.Time `json:"revoked_at"`
	Reason string    `json:"reason,omitempty"` // RFC 5280 CRLReason name; absent: unspecified
}

// CADir is a CA loaded from (or saved to) a directory.
type CADir struct {
	Dir   string
	CA    *CA
	State CRLState
}

// NewCADir pairs ca with dir in memory, with an empty revocation list and
// CRL number 1. Nothing is written until Files are written or Save is called.
func NewCADir(dir string, ca *CA) *CADir {
	return &CADir{Dir: dir, CA: ca, State: CRLState{NextNumber: big.NewInt(1)}}
}

// SaveCADir writes ca into dir (created 0700): ca.crt, ca.key (0600),
// chain.pem for an intermediate, and a fresh crl-state.json. It refuses a
// dir that already holds a CA key, so a CA is never overwritten by accident.
func SaveCADir(dir string, ca *CA) (*CADir, error) {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return nil, fmt.Errorf("CA directory %s already holds %s; refusing to overwrite a CA", dir, CAKeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	d := NewCADir(dir, ca)
	files, err := d.Files()
	if err != nil {
		return nil, err
	}
	if err := WriteFilesAtomic(files...); err != nil {
		return nil, err
	}
	return d, nil
}

// Files returns the files of the CA directory: ca.crt, ca.key (0600),
// crl-state.json and, for an intermediate, chain.pem.
func (d *CADir) Files() ([]File, error) {
	keyPEM, err := KeyPEM(d.CA.Key)
	if err != nil {
		return nil, err
	}
	state, err := d.State.marshal()
	if err != nil {
		return nil, err
	}
	files := []File{
		{Path: filepath.Join(d.Dir, CACertFile), Data: CertPEM(d.CA.Cert), Mode: 0o644},
		{Path: filepath.Join(d.Dir, CAKeyFile), Data: keyPEM, Mode: 0o600},
		{Path: filepath.Join(d.Dir, CRLStateFile), Data: state, Mode: 0o600},
	}
	if len(d.CA.Chain) > 0 {
		files = append(files, File{Path: filepath.Join(d.Dir, ChainFile), Data: CertPEM(d.CA.Chain...), Mode: 0o644})
	}
	return files, nil
}

// LoadCADir reads a CA directory written by SaveCADir (or by hand: ca.key may
// also be a PKCS#1 or SEC 1 key). It checks that the key matches the
// certificate, that the certificate is a CA allowed to sign certificates and
// CRLs, and that it is not signed with SHA-1 or MD5.
func LoadCADir(dir string) (*CADir, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("CA directory %s does not exist (create one with 'certplane pki ca --out %s')", dir, dir)
		}
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("CA directory %s is not a directory", dir)
	}
	certPath := filepath.Join(dir, CACertFile)
	certs, err := ReadCertsFile(certPath)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if err := checkCACert(certPath, cert); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	key, err := ReadKeyFile(keyPath)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%s: private key does not match the certificate in %s", keyPath, certPath)
	}
	var chain []*x509.Certificate
	chainPath := filepath.Join(dir, ChainFile)
	if _, err := os.Stat(chainPath); err == nil {
		if chain, err = ReadCertsFile(chainPath); err != nil {
			return nil, err
		}
	}
	state, err := loadCRLState(filepath.Join(dir, CRLStateFile))
	if err != nil {
		return nil, err
	}
	return &CADir{Dir: dir, CA: &CA{Cert: cert, Key: key, Chain: chain}, State: *state}, nil
}

func checkCACert(path string, c *x509.Certificate) error {
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return fmt.Errorf("%s: certificate %q is not a CA (basicConstraints CA:TRUE missing)", path, c.Subject.CommonName)
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%s: CA %q lacks keyUsage keyCertSign", path, c.Subject.CommonName)
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("%s: CA %q lacks keyUsage cRLSign, so it cannot sign CRLs", path, c.Subject.CommonName)
	}
	return rejectWeakSignature(path, c)
}

// rejectWeakSignature refuses SHA-1 and MD5 signatures: browsers, Go and
// OpenSSL at its default security level reject them.
func rejectWeakSignature(path string, c *x509.Certificate) error {
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		return fmt.Errorf("%s: certificate %q is signed with %v; SHA-1 and MD5 are refused, reissue it with SHA-256", path, c.Subject.CommonName, c.SignatureAlgorithm)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// ReadCertsFile reads every CERTIFICATE block of a PEM file (or one DER
// certificate) and returns them in file order. It fails if there is none.
func ReadCertsFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	certs, err := ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParseCerts parses PEM CERTIFICATE blocks, or a single DER certificate.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	err := pemder.Lenient(data, func(_ int, b pemder.Block) error {
		if b.Type != pemder.TypeCertificate {
			return nil
		}
		c, err := x509.ParseCertificate(b.DER)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return certs, nil
}

// ReadKeyFile reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC 1 (EC).
func ReadKeyFile(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses the first private key PEM block.
func ParseKey(data []byte) (crypto.Signer, error) {
	var key crypto.Signer
	err := pemder.Lenient(data, func(_ int, b pemder.Block) error {
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.DER)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.DER)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.DER)
		case "ENCRYPTED PRIVATE KEY":
			return errors.New("the private key is encrypted; certplane needs it unencrypted (openssl pkey -in KEY -out KEY.plain)")
		default:
			return nil
		}
		if err != nil {
			return fmt.Errorf("parse %s: %w", b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return fmt.Errorf("unsupported private key type %T", k)
		}
		key = s
		return errStop
	})
	switch {
	case key != nil:
		return key, nil
	case err != nil:
		return nil, err
	}
	return nil, errors.New("no PRIVATE KEY PEM block")
}

// errStop ends a pemder.Lenient walk early.
var errStop = errors.New("stop")

func loadCRLState(path string) (*CRLState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// A CA made elsewhere: start its CRLs at 1.
		return &CRLState{NextNumber: big.NewInt(1)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CRL state: %w", err)
	}
	var j crlStateJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, ok := new(big.Int).SetString(j.NextNumber, 10)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("%s: next_crl_number %q is not a positive integer", path, j.NextNumber)
	}
	st := &CRLState{NextNumber: n}
	for _, r := range j.Revoked {
		s, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("%s: revoked serial %q is not hex", path, r.Serial)
		}
		reason := Unspecified
		if r.Reason != "" {
			if reason, ok = ParseReason(r.Reason); !ok {
				return nil, fmt.Errorf("%s: revoked serial %s: unknown reason %q", path, r.Serial, r.Reason)
			}
		}
		st.Revoked = append(st.Revoked, Revoked{Serial: s, At: r.At, Reason: reason})
	}
	return st, nil
}

func (s CRLState) marshal() ([]byte, error) {
	j := crlStateJSON{NextNumber: s.NextNumber.String(), Revoked: []revokedEntry{}}
	for _, r := range s.Revoked {
		e := revokedEntry{Serial: fmt.Sprintf("%X", r.Serial), At: r.At.UTC()}
		if r.Reason != Unspecified {
			e.Reason = r.Reason.String()
		}
		j.Revoked = append(j.Revoked, e)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CRL state: %w", err)
	}
	return append(b, '\n'), nil
}

// Revoke adds cert to the CA's revocation list (in memory; WriteCRL persists
// it). It refuses a certificate this CA did not sign. It reports false when
// the serial was already revoked, which leaves the list unchanged.
func (d *CADir) Revoke(cert *x509.Certificate, at time.Time) (bool, error) {
	return d.RevokeWithReason(cert, Unspecified, at)
}

// RevokeWithReason is Revoke recording why (the CRL entry's reasonCode).
func (d *CADir) RevokeWithReason(cert *x509.Certificate, reason Reason, at time.Time) (bool, error) {
	if err := cert.CheckSignatureFrom(d.CA.Cert); err != nil {
		return false, fmt.Errorf("certificate %q (serial %X) was not issued by CA %q: %w",
			cert.Subject.CommonName, cert.SerialNumber, d.CA.Cert.Subject.CommonName, err)
	}
	return d.RevokeSerial(cert.SerialNumber, reason, at)
}

// RevokeSerial adds a serial to the list without the certificate: for a
// certificate that is lost, or known only from a log or `openssl x509
// -serial`. Nothing proves this CA issued it; a serial it never issued
// revokes nothing. A serial already revoked keeps its first entry.
func (d *CADir) RevokeSerial(serial *big.Int, reason Reason, at time.Time) (bool, error) {
	if serial == nil || serial.Sign() <= 0 {
		return false, fmt.Errorf("serial %v: a certificate serial is a positive integer", serial)
	}
	if !reason.Valid() {
		return false, fmt.Errorf("revocation reason %d is not one a CRL may carry", int(reason))
	}
	for _, r := range d.State.Revoked {
		if r.Serial.Cmp(serial) == 0 {
			return false, nil
		}
	}
	d.State.Revoked = append(d.State.Revoked, Revoked{Serial: new(big.Int).Set(serial), At: at.UTC().Truncate(time.Second), Reason: reason})
	sort.Slice(d.State.Revoked, func(i, j int) bool { return d.State.Revoked[i].Serial.Cmp(d.State.Revoked[j].Serial) < 0 })
	return true, nil
}

// SignCRL signs a CRL with the next CRL number, thisUpdate = now and
// nextUpdate = now + validity, and moves the CRL number on in d.State. It
// returns the DER. Persist the new state with Files (or use WriteCRL), or a
// later CRL reuses the number.
func (d *CADir) SignCRL(now time.Time, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("CRL validity %v must be positive", validity)
	}
	this := now.UTC().Truncate(time.Second)
	der, err := d.CA.CRL(CRLOptions{
		Revoked:    d.State.Revoked,
		Number:     d.State.NextNumber,
		ThisUpdate: this,
		NextUpdate: this.Add(validity),
	})
	if err != nil {
		return nil, err
	}
	d.State.NextNumber = new(big.Int).Add(d.State.NextNumber, big.NewInt(1))
	return der, nil
}

// WriteCRL signs a CRL (see SignCRL), writes it to path as PEM and saves
// the CRL state beside the CA. A staging error (unwritable directory, full
// disk) leaves both files as they were, and d.State too.
func (d *CADir) WriteCRL(path string, now time.Time, validity time.Duration) (*x509.RevocationList, error) {
	prev := d.State.NextNumber
	der, err := d.SignCRL(now, validity)
	if err != nil {
		return nil, err
	}
	crl, err := x509.ParseRevocationList(der)
	if err == nil {
		var state []byte
		if state, err = d.State.marshal(); err == nil {
			err = WriteFilesAtomic(
				File{Path: path, Data: CRLPEM(der), Mode: 0o644},
				File{Path: filepath.Join(d.Dir, CRLStateFile), Data: state, Mode: 0o600},
			)
		}
	}
	if err != nil {
		d.State.NextNumber = prev
		return nil, err
	}
	return crl, nil
}
