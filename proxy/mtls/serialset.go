package mtls

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/big"

	crlparse "github.com/certplane/certplane/crl"
)

// serialSet is the revoked-serial index of one CRL: every key packed,
// length-prefixed, into one byte slice, and an open-addressing table of
// offsets into it. A key is the serial's DER INTEGER content (crl.Entry's
// Serial, crlparse.AppendSerial for a certificate): minimal two's complement, so
// equal serials have equal keys and a negative serial never equals a
// positive one. A CRL of a million serials costs about 25 bytes a serial
// instead of about 57 with a map[string]struct{} (a string allocation and a
// map slot each), and a lookup still costs one hash and a probe or two,
// whatever the size: the O(1) lookup is kept.
type serialSet struct {
	seed  maphash.Seed
	blob  []byte   // uvarint length, key bytes; repeated
	slots []uint32 // offset+1 into blob; 0 is empty; len is a power of two
	n     int
}

// newSerialSetSized returns an empty set sized for n serials; add fills it.
func newSerialSetSized(n int) *serialSet {
	s := &serialSet{seed: maphash.MakeSeed()}
	size := 1
	for size < 2*n { // load factor ≤ 1/2: short probe runs
		size <<= 1
	}
	s.slots = make([]uint32, size)
	return s
}

// newSerialSet indexes serials; duplicates are stored once.
func newSerialSet(serials []*big.Int) *serialSet {
	s := newSerialSetSized(len(serials))
	var buf [64]byte
	for _, n := range serials {
		s.add(crlparse.AppendSerial(buf[:0], n))
	}
	return s
}

// add stores key (copied) unless present. At most the n given to
// newSerialSetSized keys may be added.
func (s *serialSet) add(key []byte) {
	slot, found := s.find(key)
	if found {
		return
	}
	// Offsets are uint32: a CRL is bounded far below 4 GB by the loader's
	// file size limit.
	s.slots[slot] = uint32(len(s.blob)) + 1
	s.blob = binary.AppendUvarint(s.blob, uint64(len(key)))
	s.blob = append(s.blob, key...)
	s.n++
}

// find returns the slot holding key, or the empty slot where it would go.
func (s *serialSet) find(key []byte) (slot int, found bool) {
	mask := len(s.slots) - 1
	for i := int(maphash.Bytes(s.seed, key)) & mask; ; i = (i + 1) & mask {
		off := s.slots[i]
		if off == 0 {
			return i, false
		}
		l, k := binary.Uvarint(s.blob[off-1:])
		start := int(off-1) + k
		if bytes.Equal(s.blob[start:start+int(l)], key) {
			return i, true
		}
	}
}

func (s *serialSet) contains(n *big.Int) bool {
	if n == nil {
		return false
	}
	var buf [64]byte
	_, found := s.find(crlparse.AppendSerial(buf[:0], n))
	return found
}

func (s *serialSet) len() int { return s.n }

// serialKey is the index key of a serial number.
func serialKey(n *big.Int) string { return string(crlparse.AppendSerial(nil, n)) }
