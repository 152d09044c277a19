// Package crl parses X.509 CRLs by streaming over their DER and holds the
// one CRL admission rule of certplane, BoringSSL's as Envoy applies it, for
// `check`, `serve` and `proxy` alike.
//
// A CRL is never kept parsed. Parse walks CertificateList → TBSCertList →
// revokedCertificates with cryptobyte and calls back once per entry with
// the serial's DER bytes (an alias into the input, no copy), so a data
// plane builds its own packed serial index and the control plane keeps a
// Summary: issuer, number, dates, entry count, SHA-256, extension facts,
// and the TBS and signature bytes needed to verify it. Nothing proportional
// to the entries is allocated: on a 1M-serial CRL (35.5 MB) Parse allocates
// about 2 KB in 36 allocations, where x509.ParseRevocationList allocates
// about 1 GB in 3 million (BenchmarkCRL1M).
//
//	err := crl.Blocks(data, func(b crl.Block) error {
//		if b.Type != crl.PEMType {
//			return fmt.Errorf("line %d: %q block in a CRL file", b.Line, b.Type)
//		}
//		s, err := crl.Parse(b.DER, nil) // check and count; then index in a second walk
//		if err != nil {
//			return fmt.Errorf("CRL at line %d: %w", b.Line, err)
//		}
//		issuer, problems, err := crl.Admit(s, cas, now)
//		...
//	})
//
// Serials are compared as DER INTEGER content bytes: DER's minimal
// encoding (which Parse enforces, as x509 and BoringSSL do) makes equal
// integers equal bytes, so no normalisation is needed; AppendSerial
// encodes a certificate's *big.Int the same way. Negative and zero serials
// are kept, as x509 and BoringSSL keep them (Go's own ParseCertificate
// refuses negative serials since Go 1.23, so only Envoy can meet them).
//
// # Admission rules
//
// Parse (syntax) refuses a CRL outright; Admit refuses (err) a CRL that
// BoringSSL could never use to clear a certificate or that no CA of the
// store issued, and reports (problems) without refusing. "config" is
// config/trust.go (checkCRL) and "proxy" is proxy/mtls/crl.go and
// crlset.go, before this package.
//
//	rule                                          here        source                                          config today         proxy today
//	P1  v2 CRL: version present and 1             Parse       x509 ParseRevocationList (BoringSSL takes v1)   same (x509)          same (x509)
//	P2  inner = outer signature algorithm         Parse       x509; BoringSSL X509_CRL_verify                 same                 same
//	P3  no trailing data anywhere                 Parse       DER; BoringSSL's template parser                accepted (x509)      accepted (x509)
//	P4  no duplicate extension (CRL or entry)     Parse       BoringSSL X509_CRL_get_ext_d2i (-2) for          accepted             accepted
//	                                                          IDP, AKI, reasonCode; RFC 5280 4.2 for all
//	P5  no empty extensions list                  Parse       BoringSSL crl_cb, crl_parse_entry_extensions    accepted             accepted
//	P6  thisUpdate/nextUpdate in RFC 5280 form    Parse       BoringSSL X509_cmp_time_posix fails otherwise   accepted             accepted
//	P7  revocationDate as x509 reads it           Parse       x509 parseTime (BoringSSL never reads it)       same                 same
//	P8  serial: minimal INTEGER                   Parse       x509; BoringSSL c2i_ASN1_INTEGER                same                 same
//	P9  signature without unused bits             Parse       BoringSSL ASN1_item_verify                      accepted             accepted
//	P10 AKI not critical                          Parse       x509 parseAuthorityKeyIdentifier                same (x509)          same (x509)
//	P11 AKI and IDP well-formed                   Parse       BoringSSL crl_cb (d2i of IDP and AKI)           IDP not read         IDP: unusable
//	P12 CRL number and reasonCode well-formed     Parse       x509 (BoringSSL: reason → EXFLAG_INVALID)       same (x509)          same (x509)
//	P13 issuer name strings valid                 Parse       x509 parseName                                  same                 same
//	A1  a store CA's subject is the issuer        Admit       BoringSSL get_crl_score (X509_NAME_cmp)         bytes.Equal          bytes.Equal
//	A2  AKI matches that CA (key id, serial,      Admit       BoringSSL crl_akid_check, X509_check_akid       not checked          not checked
//	    issuer)
//	A3  signature verifies over the raw TBS       Admit       BoringSSL check_crl (CRL_SIGNATURE_FAILURE)     CheckSignatureFrom   signedBy
//	A4  the issuer is a CA                        Admit       x509 RevocationList.CheckSignatureFrom          same                 CRLSet.Lookup
//	A5  cRLSign when the key usage extension is   Admit       BoringSSL check_crl (KEYUSAGE_NO_CRL_SIGN)      x509: KeyUsage != 0  same as here
//	    present
//	A6  not a delta CRL (critical or not)         Admit       BoringSSL supports no delta CRL                 refused              critical only
//	A7  no critical CRL extension but IDP, AKI    Admit       BoringSSL crl_cb EXFLAG_CRITICAL, cert_crl      ACCEPTED a critical  unusable
//	                                                          (UNHANDLED_CRITICAL_CRL_EXTENSION); RFC 5280    CRL number, freshest
//	                                                          5.2 (MUST reject an unrecognised critical       CRL or AIA (#12)
//	                                                          extension)
//	A8  no critical entry extension at all        Admit       BoringSSL crl_parse_entry_extensions            ACCEPTED a critical  unusable
//	                                                          ("we do not support any")                       reasonCode or
//	                                                                                                          invalidityDate
//	A9  IDP not indirect                          Admit       BoringSSL get_crl_score (IDP_INDIRECT)          accepted             unusable
//	A10 IDP without onlySomeReasons               Admit       BoringSSL get_crl_score (IDP_REASONS: present)  accepted             unusable if bits set
//	A11 IDP not onlyContainsAttributeCerts        Admit       BoringSSL crl_crldp_check → DIFFERENT_CRL_SCOPE accepted             unusable
//	A12 IDP sets at most one only* flag           Admit       BoringSSL setup_idp (IDP_INVALID)               accepted             accepted
//	R1  expired: nextUpdate <= now                reported    BoringSSL check_crl_time (CRL_HAS_EXPIRED), at  refused              per handshake (now >
//	                                                          whole seconds                                                        nextUpdate)
//	R2  not yet valid: thisUpdate > now           reported    BoringSSL check_crl_time (CRL_NOT_YET_VALID)     refused              per handshake
//	R3  no CRL number                             reported    RFC 5280 5.2.3 (MUST); BoringSSL ignores it     accepted             accepted
//	C1  scope: onlyUser/onlyCA against the        caller      BoringSSL crl_crldp_check                       -                    covers
//	    certificate, IDP names against its CRLDP              (Summary.IDP carries the fields)
//	C2  several CRLs of one CA: the newest        caller      BoringSSL get_crl_sk (thisUpdate); Newer        -                    checkCert
//	C3  a CRL older than the served one refused   caller      DESIGN.md "revocation never goes backwards";    -                    -
//	                                                          Newer (CRL number, then thisUpdate)
//	C4  expiry warning a day ahead                caller      config crlExpiryWarning (Summary.NextUpdate)    warning              -
//
// Expired and not-yet-valid CRLs are reported, not refused: the caller
// serves the newest CRL it has, so the CA's clients fail closed
// (CRL_HAS_EXPIRED) instead of losing revocation checks. A CRL refused by
// Admit must fail its CA's clients closed too: the caller keeps the CA
// without a usable CRL (BoringSSL's UNABLE_TO_GET_CRL), never the CA alone.
//
// # Differences from crypto/x509
//
// Parse accepts a strict subset of what x509.ParseRevocationList accepts
// (FuzzParseCRL and TestParseStrict check both directions); each refusal
// x509 does not make wraps one of:
//
//   - ErrTrailingData: bytes after the CRL, after the signature, at the end
//     of TBSCertList, an entry, an extension or its value, or an
//     AlgorithmIdentifier. x509 ignores them; behind one, a whole critical
//     extensions field goes unseen (TestParseStrict/extensions-hidden-behind-junk).
//   - ErrDuplicateExtension, ErrEmptyExtensions, ErrSignatureBits,
//     ErrExtensionSyntax (a malformed IDP or AKI): BoringSSL fails on them.
//   - ErrTimeForm: thisUpdate or nextUpdate with a time zone offset, without
//     seconds, or otherwise not YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ; BoringSSL
//     cannot compare them, so Envoy would fail every client of the CA.
//
// Everything else follows x509 exactly: the issuer name and the signature
// algorithm are decoded by x509 itself (from a probe CRL holding only
// them), times, integers and OIDs by the cryptobyte functions x509 uses.
// Parse accepts nothing x509 refuses.
//
// # Differences from BoringSSL
//
// Where Go is stricter, Parse and Admit follow Go: a v1 CRL (no version
// field) and a critical AKI are refused, and names are compared byte for
// byte, not in OpenSSL's canonical form (an issuer spelled differently but
// equal after case folding fails, closed). Where this package is stricter
// than both: trailing data and odd times are refused when the CRL is
// loaded (BoringSSL ignores bytes after the CRL and fails the time check
// at verification); a non-critical delta CRL indicator is refused (BoringSSL
// would treat the delta as a complete CRL and miss the base CRL's entries);
// a duplicate extension other than IDP, AKI and reasonCode is refused.
package crl
