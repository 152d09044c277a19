package mtls

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/big"
)

// serialSet is the revoked-serial index of one CRL: every key (serialKey
// form) packed, length-prefixed, into one byte slice, and an open-addressing
// table of offsets into it. A CRL of a million serials costs about 25 bytes
// a serial instead of about 57 with a map[string]struct{} (a string
// allocation and a map slot each), and a lookup still costs one hash and a
// probe or two, whatever the size: the O(1) lookup is kept.
type serialSet struct {
	seed  maphash.Seed
	blob  []byte   // uvarint length, key bytes; repeated
	slots []uint32 // offset+1 into blob; 0 is empty; len is a power of two
	n     int
}

// newSerialSet indexes serials; duplicates are stored once.
func newSerialSet(serials []*big.Int) *serialSet {
	s := &serialSet{seed: maphash.MakeSeed()}
	size := 1
	for size < 2*len(serials) { // load factor ≤ 1/2: short probe runs
		size <<= 1
	}
	s.slots = make([]uint32, size)
	var buf [64]byte
	for _, n := range serials {
		key := appendSerialKey(buf[:0], n)
		slot, found := s.find(key)
		if found {
			continue
		}
		// Offsets are uint32: a CRL is bounded far below 4 GB by the
		// loader's file size limit.
		s.slots[slot] = uint32(len(s.blob)) + 1
		s.blob = binary.AppendUvarint(s.blob, uint64(len(key)))
		s.blob = append(s.blob, key...)
		s.n++
	}
	return s
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
	var buf [64]byte
	_, found := s.find(appendSerialKey(buf[:0], n))
	return found
}

func (s *serialSet) len() int { return s.n }

// appendSerialKey appends n's key: a sign byte (so that a negative serial
// never equals a positive one) and the big-endian magnitude.
func appendSerialKey(dst []byte, n *big.Int) []byte {
	if n == nil {
		return append(dst, 2) // no serial: matches only another nil
	}
	sign := byte(0)
	if n.Sign() < 0 {
		sign = 1
	}
	dst = append(dst, sign)
	l := (n.BitLen() + 7) / 8
	if cap(dst)-len(dst) < l {
		return append(dst, n.Bytes()...)
	}
	dst = dst[:len(dst)+l]
	n.FillBytes(dst[len(dst)-l:])
	return dst
}
