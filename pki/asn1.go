package pki

import "encoding/asn1"

type asn1BitString = asn1.BitString

func asn1Unmarshal(b []byte, v any) ([]byte, error) { return asn1.Unmarshal(b, v) }
