package config

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/certplane/certplane/pemder"
)

// errEncryptedKey is the one answer to every encrypted key format.
var errEncryptedKey = errors.New("encrypted private keys are not supported; decrypt with openssl pkey")

// pemBlock is one decoded PEM block with the line its BEGIN is on.
type pemBlock struct {
	pemder.Block
	Bytes []byte // Block.DER, under encoding/pem's name
	line  int
}

// decodePEM splits data into PEM blocks (pemder.Decode). Text between
// blocks (OpenSSL's "Bag Attributes", comments) is allowed, as OpenSSL
// allows it. An empty file, a DER file, and a BEGIN line without a
// well-formed block after it are errors. derHint names the command that
// converts DER content.
func decodePEM(data []byte, derHint string) ([]pemBlock, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file")
	}
	decoded, err := pemder.Decode(data)
	if err != nil {
		return nil, err
	}
	if len(decoded) == 0 {
		if pemder.LooksDER(data) {
			return nil, fmt.Errorf("file holds DER, not PEM; convert it with %s", derHint)
		}
		return nil, errors.New("no PEM block found")
	}
	blocks := make([]pemBlock, len(decoded))
	for i, b := range decoded {
		blocks[i] = pemBlock{Block: b, Bytes: b.DER, line: b.Line}
	}
	return blocks, nil
}

// parseCertBlocks parses a file that must hold only CERTIFICATE blocks.
func parseCertBlocks(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data, "openssl x509 -inform der -in FILE -out FILE.pem")
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected %q PEM block at line %d; a certificate file holds only CERTIFICATE blocks", b.Type, b.line)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate at line %d: %w", b.line, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// parseKeyBlocks finds the one private key of a key file: PKCS#8, PKCS#1 or
// SEC1. EC PARAMETERS (from openssl ecparam -genkey) and CERTIFICATE blocks
// (combined files) are skipped.
func parseKeyBlocks(data []byte) (crypto.Signer, error) {
	blocks, err := decodePEM(data, "openssl pkey -inform der -in FILE -out FILE.pem")
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	sawCert := false
	for _, b := range blocks {
		var k any
		var err error
		switch b.Type {
		case "EC PARAMETERS":
			continue
		case "CERTIFICATE":
			sawCert = true
			continue
		case "ENCRYPTED PRIVATE KEY":
			return nil, errEncryptedKey
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			if b.Headers["Proc-Type"] != "" {
				return nil, errEncryptedKey
			}
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			if b.Headers["Proc-Type"] != "" {
				return nil, errEncryptedKey
			}
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("unexpected %q PEM block at line %d; want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", b.Type, b.line)
		}
		if err != nil {
			return nil, fmt.Errorf("private key at line %d: %w", b.line, err)
		}
		if key != nil {
			return nil, fmt.Errorf("second private key at line %d; a key file holds exactly one", b.line)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key at line %d is %T, which cannot sign", b.line, k)
		}
		key = s
	}
	if key == nil {
		if sawCert {
			return nil, errors.New("no private key found, only certificates (are the certificate and key files swapped?)")
		}
		return nil, errors.New("no private key found")
	}
	return key, nil
}

// keyDesc names a key's algorithm and size for messages.
func keyDesc(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// publicKeysEqual compares public keys of any supported type.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}
