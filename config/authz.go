package config

import (
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// IdentityType is the part of a client certificate an IdentityMatcher
// reads: one kind of subject alt name, or the subject DN.
type IdentityType uint8

// Identity matcher types. The zero value is not a type.
const (
	IdentityDNS IdentityType = iota + 1
	IdentityURI
	IdentityEmail
	IdentityIP
	IdentitySubject // RFC 2253 as BoringSSL prints it (docs/resources.md, RBAC)
	// IdentityIssuer is the issuer DN, printed as the subject is. Only the
	// bundled proxy enforces it (see issuerChecks).
	IdentityIssuer
)

var identityTypeNames = enumNames{"", "dns", "uri", "email", "ip", "subject", "issuer"}

func (t IdentityType) String() string { return identityTypeNames.name(uint8(t), "IdentityType") }

// MarshalText gives the YAML spelling.
func (t IdentityType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// SANType is the subject-alt-name type t reads; 0 for subject and issuer.
func (t IdentityType) SANType() SANType {
	switch t {
	case IdentityDNS:
		return SANDNS
	case IdentityURI:
		return SANURI
	case IdentityEmail:
		return SANEmail
	case IdentityIP:
		return SANIP
	}
	return 0
}

// IdentityMatcher is one entry of a route's allow list or of a listener's
// client_auth.subjects: the client is admitted when its verified
// certificate has a value of Type that matches. Exactly one of Exact,
// Prefix, Suffix, Contains, Regex is set, with the semantics of Envoy's
// StringMatcher (Regex is RE2, matched against the whole value).
type IdentityMatcher struct {
	Type     IdentityType
	Exact    string
	Prefix   string
	Suffix   string
	Contains string
	Regex    string
}

// convertIdentity checks one allow or subjects entry as the YAML gives it.
func convertIdentity(rs rawIdentity) (IdentityMatcher, error) {
	var t IdentityType
	if v, ok := identityTypeNames.parse(rs.Type); ok {
		t = IdentityType(v)
	} else {
		return IdentityMatcher{}, fmt.Errorf("type %q: want dns, uri, email, ip, subject or issuer", rs.Type)
	}
	m := IdentityMatcher{Type: t}
	v, err := oneStringMatch(rs.Exact, rs.Prefix, rs.Suffix, rs.Contains, rs.Regex)
	if err != nil {
		return m, err
	}
	m.Exact, m.Prefix, m.Suffix, m.Contains, m.Regex = v[0], v[1], v[2], v[3], v[4]
	if t == IdentityIP && m.Exact != "" {
		if _, err := netip.ParseAddr(m.Exact); err != nil {
			return m, fmt.Errorf("exact %q is not an IP address", m.Exact)
		}
	}
	return m, nil
}

// convertIdentities converts a list whose sequence node is n; key names
// the list in messages ("client_auth: subjects", "routes[2]: allow"). The
// first issuer entry is noted in *issuerAt (when nil) for issuerChecks.
func convertIdentities(raw []rawIdentity, n *yaml.Node, fallback int, key string, issuerAt **itemErr) ([]IdentityMatcher, *itemErr) {
	out := make([]IdentityMatcher, 0, len(raw))
	for i, rs := range raw {
		line := lineOf(seqItem(n, i), fallback)
		m, err := convertIdentity(rs)
		if err != nil {
			return nil, errAt(line, "%s[%d]: %v", key, i, err)
		}
		if m.Type == IdentityIssuer && *issuerAt == nil {
			*issuerAt = errAt(line, "%s[%d]", key, i)
		}
		out = append(out, m)
	}
	return out, nil
}

// identityModeErr refuses identity rules on a listener whose client
// certificates are not verified: mode off has none to authorize, and a
// passthrough certificate proves nothing about who sent it.
func identityModeErr(mode ClientAuthMode) string {
	switch mode {
	case ModeOff:
		return "client_auth mode off requests no client certificate, so there is no identity to authorize (use mode verify, or optional to answer 403 to clients without one)"
	case ModePassthrough:
		return "client_auth mode passthrough does not verify the client certificate, so its identity proves nothing (use mode verify)"
	}
	return ""
}

// convertRouteAllow fills the allow list of each route of l from the raw
// routes, whose sequence node is routes.
func convertRouteAllow(l *Listener, raw []rawRoute, routes *yaml.Node, fallback int, issuerAt **itemErr) *itemErr {
	for i, r := range raw {
		if r.Allow == nil {
			continue
		}
		rn := seqItem(routes, i)
		line := pathLine(rn, lineOf(rn, fallback), "allow")
		if len(r.Allow) == 0 {
			return errAt(line, "routes[%d]: allow is empty, which would admit nobody; remove it to admit every client the listener accepts", i)
		}
		if why := identityModeErr(l.ClientAuth.Mode); why != "" {
			return errAt(line, "routes[%d]: allow: %s", i, why)
		}
		ms, ierr := convertIdentities(r.Allow, mapValue(rn, "allow"), line, fmt.Sprintf("routes[%d]: allow", i), issuerAt)
		if ierr != nil {
			return ierr
		}
		l.Routes[i].Allow = ms
	}
	return nil
}
