package config

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path/filepath"
	"strings"
	"time"

	"github.com/certplane/certplane/crl"
	"github.com/certplane/certplane/pemder"
)

// ParseTrustStore parses and validates a trust store with the current time.
// See Loader.ParseTrustStore.
func ParseTrustStore(name string, files map[string][]byte) (*TrustStore, []Problem, error) {
	return Loader{}.ParseTrustStore(name, files)
}

// ParseTrustStore builds trust store name from its files, keyed by path:
// *.crl files hold CRLs (PEM or DER, one or many); every other file is a PEM
// bundle of CA certificates that may also hold CRL blocks, as Envoy's
// trusted_ca may. Only CA certificates are admitted (a v1 self-signed root
// counts, with a warning); every CRL must parse and be signed by a CA of this
// store. A duplicate CA is a warning and kept once: a bundle concatenated
// twice verifies exactly like one copy, so refusing it would take traffic
// down for nothing.
//
// The unit of admission is the file (see storeAdmission): a defective file
// is left out, or replaced by its last good content when l.Trust remembers
// one, and the store is still returned with an error naming the file. A nil
// store means the store as a whole is refused (no CA left, or no CRL left
// while a file that may have carried one is out). The error joins every
// defect, each naming its file.
func (l Loader) ParseTrustStore(name string, files map[string][]byte) (*TrustStore, []Problem, error) {
	in := make([]trustInput, 0, len(files))
	for p, data := range files {
		in = append(in, trustInput{path: p, data: data})
	}
	return l.admitTrustStore(name, in)
}

// trustFile is one trust store file, parsed: its CA certificates, each
// admitted by checkCA, and its CRLs, syntax checked, in document order.
type trustFile struct {
	cas  []*x509.Certificate
	crls []*parsedCRL
}

// trustParse is what parsing one trust file gives before any check that
// depends on the time: its blocks in document order. It depends only on the
// file's content, so the parse cache keeps it.
type trustParse struct {
	blocks []trustBlock
	err    error // the file as a whole cannot be read as PEM or CRLs
}

// trustBlock is one block of a trust file: a CA, a CRL or why it failed.
type trustBlock struct {
	cert *x509.Certificate
	crl  *parsedCRL
	err  error // already names the file
}

// parseTrustFile parses one file of a trust store, or takes it from the
// parse cache when the same content was parsed before. A defect anywhere
// fails the whole file: the file is the unit of admission. warn receives
// the warnings about its CAs.
func (l Loader) parseTrustFile(file string, data []byte, info fs.FileInfo, tp *trustParse, now time.Time, warn func(error)) (*trustFile, error) {
	if tp == nil {
		tp = l.cache().trust(file, data, info, func() *trustParse { return parseTrustBlocks(file, data) })
	}
	if tp.err != nil {
		return nil, tp.err
	}
	tf := &trustFile{}
	var errs []error
	for _, b := range tp.blocks {
		switch {
		case b.err != nil:
			errs = append(errs, b.err)
		case b.crl != nil:
			tf.crls = append(tf.crls, b.crl)
		default:
			c, n := b.cert, len(tf.cas)
			if err := checkCA(c, n, now, warn); err != nil {
				errs = append(errs, fileErr(file, err))
			} else if left := c.NotAfter.Sub(now); left < l.expiryWarning() {
				warn(fmt.Errorf("%s expires on %s, in %d days", certName(n, c), c.NotAfter.UTC().Format(timeFormat), int(left.Hours()/24)))
			}
			tf.cas = append(tf.cas, c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tf, nil
}

// parseTrustBlocks parses the content of one trust file.
func parseTrustBlocks(file string, data []byte) *trustParse {
	if strings.EqualFold(filepath.Ext(file), ".crl") {
		crls, err := parseCRLFile(file, data)
		if err != nil {
			return &trustParse{err: err}
		}
		tp := &trustParse{}
		for _, c := range crls {
			tp.blocks = append(tp.blocks, trustBlock{crl: c})
		}
		return tp
	}
	blocks, err := decodePEM(data, "openssl x509 -inform der -in FILE -out FILE.pem")
	if err != nil {
		return &trustParse{err: fileErr(file, err)}
	}
	tp := &trustParse{}
	for _, b := range blocks {
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				tp.blocks = append(tp.blocks, trustBlock{err: fileErr(file, fmt.Errorf("certificate at line %d: %w", b.line, err))})
				continue
			}
			tp.blocks = append(tp.blocks, trustBlock{cert: c})
		case crl.PEMType:
			c, err := newParsedCRL(b.Bytes)
			if err != nil {
				tp.blocks = append(tp.blocks, trustBlock{err: fileErr(file, fmt.Errorf("CRL at line %d: %w", b.line, err))})
				continue
			}
			tp.blocks = append(tp.blocks, trustBlock{crl: c})
		default:
			tp.blocks = append(tp.blocks, trustBlock{err: fileErr(file, fmt.Errorf("unexpected %q PEM block at line %d; a trust store holds only CERTIFICATE and X509 CRL blocks", b.Type, b.line))})
		}
	}
	return tp
}

// crlExpiryWarning is how close a CRL's nextUpdate must be to warn. CRLs
// usually live days to weeks, so the certificates' 30 days would always fire.
const crlExpiryWarning = 24 * time.Hour

// errNoCA is the defect of a trust store without any CA certificate.
var errNoCA = errors.New("trust store holds no CA certificate")

// checkCA admits certificate i of a bundle as a trust anchor.
func checkCA(c *x509.Certificate, i int, now time.Time, warn func(error)) error {
	name := certName(i, c)
	if c.Version < 3 {
		if !selfSigned(c) {
			return fmt.Errorf("%s is an X.509 v1 certificate that is not self-signed; it cannot be a CA: reissue it as a v3 CA", name)
		}
		warn(fmt.Errorf("%s is an X.509 v1 self-signed root; it is accepted as a trust anchor, as OpenSSL and Envoy do, but should be reissued as a v3 CA", name))
	} else if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("%s is not a CA certificate (no basicConstraints CA:TRUE); a trust store holds only CA certificates", name)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%s is not valid until %s", name, c.NotBefore.UTC().Format(timeFormat))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%s expired on %s; remove it from the bundle or replace it", name, c.NotAfter.UTC().Format(timeFormat))
	}
	if alg, weak := weakSignature(c.SignatureAlgorithm); weak {
		warn(fmt.Errorf("%s is signed with %s (%s); it still works as a trust anchor, but client certificates signed with %s are refused at the handshake (bad_signature_algorithm)", name, alg, c.SignatureAlgorithm, alg))
	}
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		warn(fmt.Errorf("%s has a weak RSA key of %d bits", name, k.N.BitLen()))
	}
	return nil
}

// ParseCRLs parses a CRL file: PEM (one or many X509 CRL blocks) or DER
// (exactly one CRL). It checks syntax only (crl.Parse); crl.Admit checks
// the signature. Each summary still holds its signed bytes.
func ParseCRLs(file string, data []byte) ([]*crl.Summary, error) {
	ps, err := parseCRLFile(file, data)
	if err != nil {
		return nil, err
	}
	out := make([]*crl.Summary, len(ps))
	for i, p := range ps {
		out[i] = p.sum
	}
	return out, nil
}

// CRLFilePEM parses a CRL file as ParseCRLs does and returns its CRLs as
// PEM, whatever form the file had: what a trust store file holding them
// would hold.
func CRLFilePEM(file string, data []byte) ([]byte, error) {
	ps, err := parseCRLFile(file, data)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, p := range ps {
		out = append(out, p.pemBytes()...)
	}
	return out, nil
}

func parseCRLFile(file string, data []byte) ([]*parsedCRL, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileErr(file, errors.New("empty file"))
	}
	if !bytes.Contains(data, []byte("-----BEGIN ")) {
		c, err := newParsedCRL(data)
		if err != nil {
			return nil, fileErr(file, fmt.Errorf("not a PEM or DER CRL: %w", err))
		}
		return []*parsedCRL{c}, nil
	}
	// Stream the blocks (each decoded into a buffer of its size, the base64
	// text not copied: 35 MB to decode a 1M-serial CRL, not 81). Any
	// defect is reported by the walk below, whose texts the loader has
	// always given.
	var out []*parsedCRL
	err := pemder.Blocks(data, func(b pemder.Block) error {
		if b.Type != crl.PEMType {
			return errBadBlock
		}
		c, err := newParsedCRL(b.DER)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err == nil && len(out) > 0 {
		if len(out) == 1 && out[0].der != nil && pemder.IsEncoding(data, crl.PEMType, out[0].der) {
			// The file is the PEM served: keep it rather than encode it
			// again (a 1M-serial CRL: 48 MB less at the peak).
			out[0].pem = data[:len(data):len(data)]
		}
		return out, nil
	}
	out = nil
	blocks, err := decodePEM(data, "")
	if err != nil {
		return nil, fileErr(file, err)
	}
	for _, b := range blocks {
		if b.Type != crl.PEMType {
			return nil, fileErr(file, fmt.Errorf("unexpected %q PEM block at line %d; a .crl file holds only X509 CRL blocks", b.Type, b.line))
		}
		c, err := newParsedCRL(b.Bytes)
		if err != nil {
			return nil, fileErr(file, fmt.Errorf("CRL at line %d: %w", b.line, err))
		}
		out = append(out, c)
	}
	return out, nil
}

// errBadBlock stops the streaming walk of a CRL file at a block of
// another type; the walk that reports it names the block.
var errBadBlock = errors.New("not a CRL block")

func crlName(i int, s *crl.Summary) string {
	return fmt.Sprintf("CRL %d (issuer %s)", i+1, s.Issuer)
}

// checkCRL admits CRL i of a file against the CAs of its store with
// crl.Admit, the one admission rule that the proxy applies too, and returns
// the CA whose signature it bears. An expired CRL passes: it is served, so
// that the handshakes of its CA's clients fail closed (see crlExpired).
func checkCRL(c *parsedCRL, i int, cas []*x509.Certificate, store string, now time.Time) (*x509.Certificate, error) {
	s := c.sum
	name := crlName(i, s)
	if err := s.Usable(); err != nil {
		return nil, unusableErr(name, s, err)
	}
	issuer, err := c.admit(cas, now)
	if err != nil {
		return nil, fmt.Errorf("%s is not signed by any CA of trust store %q: %s", name, store, issuerCause(s, err))
	}
	if now.Before(s.ThisUpdate) {
		return nil, fmt.Errorf("%s is not valid until %s (thisUpdate)", name, s.ThisUpdate.UTC().Format(timeFormat))
	}
	return issuer, nil
}

// unusableErr says, in the loader's words, why crl.Summary.Usable refuses
// a CRL whatever CA signed it.
func unusableErr(name string, s *crl.Summary, err error) error {
	switch {
	case errors.Is(err, crl.ErrDelta):
		return fmt.Errorf("%s is a delta CRL; delta CRLs are not supported: publish a complete CRL", name)
	case errors.Is(err, crl.ErrUnhandledCritical) && len(s.Critical) > 0:
		oid := s.Critical[0]
		if known := knownCRLExtensions[oid.String()]; known != "" {
			return fmt.Errorf("%s has a critical %s extension (%s), which BoringSSL (Envoy) does not handle; it cannot be used (RFC 5280 5.2): reissue the CRL with it non-critical", name, known, oid)
		}
		return fmt.Errorf("%s has an unknown critical extension %s; it cannot be used (RFC 5280 5.2)", name, oid)
	case errors.Is(err, crl.ErrCriticalEntry) && s.CriticalEntry != nil:
		e := s.CriticalEntry
		return fmt.Errorf("%s: the entry for serial %s has a critical extension %s; BoringSSL (Envoy) handles no critical entry extension, so the CRL cannot be used (RFC 5280 5.3)", name, serialString(e.Serial), e.OID)
	}
	return fmt.Errorf("%s cannot be used: %w", name, err)
}

// knownCRLExtensions names the CRL extensions BoringSSL reads but refuses
// as critical.
var knownCRLExtensions = map[string]string{
	"2.5.29.20":         "CRL number",
	"2.5.29.46":         "freshest CRL",
	"1.3.6.1.5.5.7.1.1": "authority information access",
}

// serialString prints a DER INTEGER content (two's complement) in decimal.
func serialString(b []byte) string {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n.String()
}

// issuerCause is why no CA of the store issued a CRL, as the loader has
// always said it: the verifier's own error for a bad signature, or the
// missing subject.
func issuerCause(s *crl.Summary, err error) string {
	if errors.Is(err, crl.ErrSignature) {
		return leafErr(err).Error()
	}
	if msg, ok := strings.CutPrefix(err.Error(), crl.ErrNoIssuer.Error()+": "); ok {
		if strings.HasPrefix(msg, "no CA has subject ") {
			return "no CA there has subject " + s.Issuer
		}
		return msg
	}
	return err.Error()
}

// leafErr follows the last wrapped error down to the first cause.
func leafErr(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return err
			}
			err = errs[len(errs)-1]
		case interface{ Unwrap() error }:
			next := u.Unwrap()
			if next == nil {
				return err
			}
			err = next
		default:
			return err
		}
	}
}

// crlExpired is the defect of a CRL whose nextUpdate has passed.
func crlExpired(s *crl.Summary, i int, now time.Time) error {
	if s.NextUpdate.IsZero() || !now.After(s.NextUpdate) {
		return nil
	}
	return fmt.Errorf("%s expired on %s (nextUpdate); an expired CRL fails closed: publish a fresh one", crlName(i, s), s.NextUpdate.UTC().Format(timeFormat))
}

// crlExpiring is the warning for a CRL whose nextUpdate is near.
func crlExpiring(s *crl.Summary, i int, now time.Time) error {
	left := s.NextUpdate.Sub(now)
	if s.NextUpdate.IsZero() || left < 0 || left >= crlExpiryWarning {
		return nil
	}
	return fmt.Errorf("%s expires on %s (nextUpdate), in %d minutes: publish a fresh one before then, or clients of that CA are refused", crlName(i, s), s.NextUpdate.UTC().Format(timeFormat), int(left.Minutes()))
}
