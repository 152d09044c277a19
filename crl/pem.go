package crl

import "github.com/certplane/certplane/pemder"

// PEMType is the PEM block type of a CRL.
const PEMType = pemder.TypeCRL

// Block is one block of a CRL file.
type Block = pemder.Block

// Blocks calls fn for each block of data in order and stops at the first
// error (pemder.Blocks: each block decoded into one buffer of its exact
// size, the file never copied). data is PEM when a line starts with
// "-----BEGIN ", and then every block is handed over, whatever its type (a
// trust bundle mixes CERTIFICATE and X509 CRL; a .crl file caller refuses
// other types). Otherwise data is one DER CRL, handed over as it is with
// Type PEMType.
func Blocks(data []byte, fn func(Block) error) error {
	return pemder.Blocks(data, func(b Block) error {
		if b.Type == "" {
			b.Type = PEMType
		}
		return fn(b)
	})
}

func beginAt(data []byte) int { return pemder.BeginAt(data) }
