package mtls

import (
	"math/big"
	"testing"
)

// TestSerialSet: members are found, non-members are not, a negative serial
// never matches the positive one with the same bytes (nor "-"-prefixed
// bytes), duplicates count once, and long serials work.
func TestSerialSet(t *testing.T) {
	long, _ := new(big.Int).SetString("123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 16)
	in := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(-1), big.NewInt(255), big.NewInt(255), long}
	for i := range 1000 {
		in = append(in, big.NewInt(int64(1_000_000+i)))
	}
	s := newSerialSet(in)
	if s.len() != len(in)-1 {
		t.Errorf("len = %d, want %d (one duplicate)", s.len(), len(in)-1)
	}
	for _, n := range in {
		if !s.contains(n) {
			t.Errorf("%v not found", n)
		}
	}
	for _, n := range []*big.Int{big.NewInt(2), big.NewInt(-255), big.NewInt(0x2d01), big.NewInt(999_999), big.NewInt(1_001_000), new(big.Int).Add(long, big.NewInt(1)), nil} {
		if s.contains(n) {
			t.Errorf("%v found but not a member", n)
		}
	}
	if newSerialSet(nil).contains(big.NewInt(1)) {
		t.Error("empty set has a member")
	}
}
