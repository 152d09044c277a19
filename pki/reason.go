package pki

import (
	"strconv"
	"strings"
)

// Reason is an RFC 5280 CRLReason (5.3.1), the reasonCode of a CRL entry.
type Reason int

// The reasons a CRL entry may carry. 7 is unused; removeFromCRL (8) belongs
// to delta CRLs only, which certplane does not issue.
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	CACompromise         Reason = 2
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	CertificateHold      Reason = 6
	PrivilegeWithdrawn   Reason = 9
	AACompromise         Reason = 10
)

// reasonNames are OpenSSL's spellings (openssl ca -crl_reason), which
// ParseReason accepts in any case.
var reasonNames = map[Reason]string{
	Unspecified:          "unspecified",
	KeyCompromise:        "keyCompromise",
	CACompromise:         "CACompromise",
	AffiliationChanged:   "affiliationChanged",
	Superseded:           "superseded",
	CessationOfOperation: "cessationOfOperation",
	CertificateHold:      "certificateHold",
	PrivilegeWithdrawn:   "privilegeWithdrawn",
	AACompromise:         "AACompromise",
}

// Valid reports whether r is a reason a full CRL may carry.
func (r Reason) Valid() bool { _, ok := reasonNames[r]; return ok }

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseReason reads a reason name as OpenSSL spells it, in any case.
func ParseReason(s string) (Reason, bool) {
	for r, n := range reasonNames {
		if strings.EqualFold(s, n) {
			return r, true
		}
	}
	return 0, false
}

// ReasonNames lists the accepted names in code order, for help texts.
func ReasonNames() []string {
	out := make([]string, 0, len(reasonNames))
	for _, r := range []Reason{Unspecified, KeyCompromise, CACompromise, AffiliationChanged, Superseded,
		CessationOfOperation, CertificateHold, PrivilegeWithdrawn, AACompromise} {
		out = append(out, reasonNames[r])
	}
	return out
}
