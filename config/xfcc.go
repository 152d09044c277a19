package config

import (
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// XFCCMode is what a listener does with the x-forwarded-client-cert header
// a client sends: Envoy's forward_client_cert_details.
type XFCCMode uint8

// XFCC modes. The zero value is sanitize_set, the default.
const (
	XFCCSanitizeSet   XFCCMode = iota // drop the client's header, set this hop's (SANITIZE_SET)
	XFCCAppendForward                 // keep the client's header, append this hop's (APPEND_FORWARD)
	XFCCForwardOnly                   // keep the client's header, add nothing (FORWARD_ONLY)
)

var xfccModeNames = enumNames{"sanitize_set", "append_forward", "forward_only"}

func (m XFCCMode) String() string { return xfccModeNames.name(uint8(m), "XFCCMode") }

// MarshalText gives the YAML spelling.
func (m XFCCMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Forwards reports whether the mode keeps the XFCC a client sent: only
// safe when every client is a trusted proxy.
func (m XFCCMode) Forwards() bool { return m == XFCCAppendForward || m == XFCCForwardOnly }

// XFCCField is one element of the XFCC value this hop sets.
type XFCCField uint8

// XFCC fields, in the order Envoy writes them. The zero value is not a field.
const (
	XFCCHash    XFCCField = iota + 1 // always written by Envoy
	XFCCCert                         // URL-encoded PEM of the leaf
	XFCCChain                        // URL-encoded PEM of every certificate sent
	XFCCSubject                      // RFC 2253, quoted
	XFCCURI                          // URI SANs (a lone "URI=" when none)
	XFCCDNS                          // DNS SANs
)

var xfccFieldNames = enumNames{"", "hash", "cert", "chain", "subject", "uri", "dns"}

func (f XFCCField) String() string { return xfccFieldNames.name(uint8(f), "XFCCField") }

// MarshalText gives the YAML spelling.
func (f XFCCField) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// AllXFCCFields is the default field set.
var AllXFCCFields = []XFCCField{XFCCHash, XFCCCert, XFCCChain, XFCCSubject, XFCCURI, XFCCDNS}

// XFCC is a listener's x-forwarded-client-cert policy.
type XFCC struct {
	Mode XFCCMode
	// Fields this hop writes, in Envoy's order; empty for forward_only.
	Fields []XFCCField
}

// Has reports whether f is written.
func (x XFCC) Has(f XFCCField) bool { return slices.Contains(x.Fields, f) }

// DefaultXFCC is sanitize_set with every field: what certplane always sent.
func DefaultXFCC() XFCC {
	return XFCC{Mode: XFCCSanitizeSet, Fields: slices.Clone(AllXFCCFields)}
}

// rawCertHeader is one client_cert_headers entry: "xfcc", "alb", or the
// mapping {xfcc: {mode, fields}}.
type rawCertHeader struct {
	Name   string
	Mode   string
	Fields *[]string
	Mapped bool
	line   int
}

func (h *rawCertHeader) UnmarshalYAML(n *yaml.Node) error {
	h.line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		h.Name = n.Value
		return nil
	case yaml.MappingNode:
	default:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a client_cert_headers entry is xfcc, alb or a mapping {xfcc: {mode, fields}}", n.Line)}}
	}
	if len(n.Content) != 2 || n.Content[0].Value != "xfcc" || n.Content[1].Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a client_cert_headers mapping is {xfcc: {mode, fields}}", n.Line)}}
	}
	h.Name, h.Mapped = "xfcc", true
	return decodeFields(n.Content[1], "config.rawXFCC", func(key string, v *yaml.Node) (bool, error) {
		switch key {
		case "mode":
			return true, v.Decode(&h.Mode)
		case "fields":
			var fs []string
			err := v.Decode(&fs)
			h.Fields = &fs
			return true, err
		}
		return false, nil
	})
}

// convertCertHeaders converts client_cert_headers (key on line line) for a
// listener whose client_auth mode is mode.
func convertCertHeaders(raw []rawCertHeader, mode ClientAuthMode, line int) ([]ClientCertHeader, XFCC, *itemErr) {
	hs := make([]ClientCertHeader, 0, len(raw))
	var x XFCC
	for i, rh := range raw {
		at := line
		if rh.line > 0 {
			at = rh.line
		}
		h, err := ParseClientCertHeader(rh.Name)
		if err != nil {
			return nil, x, errAt(at, "client_cert_headers[%d]: %v", i, err)
		}
		if slices.Contains(hs, h) {
			return nil, x, errAt(at, "client_cert_headers: %q is listed twice", rh.Name)
		}
		hs = append(hs, h)
		if h != HeaderXFCC {
			continue
		}
		x = DefaultXFCC()
		if !rh.Mapped {
			continue
		}
		if x, err = convertXFCC(rh, mode); err != nil {
			return nil, x, errAt(at, "client_cert_headers[%d]: xfcc: %v", i, err)
		}
	}
	if len(hs) > 0 && mode == ModeOff {
		return nil, x, errAt(line, "client_cert_headers: no client certificate is requested with client_auth mode off, so there is nothing to forward")
	}
	return hs, x, nil
}

func convertXFCC(rh rawCertHeader, mode ClientAuthMode) (XFCC, error) {
	x := DefaultXFCC()
	if rh.Mode != "" {
		v, ok := xfccModeNames.parse(rh.Mode)
		if !ok {
			return x, fmt.Errorf("mode %q: want sanitize_set (the default), append_forward or forward_only", rh.Mode)
		}
		x.Mode = XFCCMode(v)
	}
	if x.Mode.Forwards() && mode == ModePassthrough {
		return x, fmt.Errorf("mode %s keeps the XFCC header the client sent, and client_auth mode passthrough does not verify who the client is: anyone could forge identities for the backends (use mode verify with subject_alt_names naming the trusted proxies)", x.Mode)
	}
	if x.Mode == XFCCForwardOnly {
		if rh.Fields != nil {
			return x, errors.New("fields apply to sanitize_set and append_forward; forward_only adds nothing")
		}
		x.Fields = nil
		return x, nil
	}
	if rh.Fields == nil {
		return x, nil
	}
	var fields []XFCCField
	for _, s := range *rh.Fields {
		v, ok := xfccFieldNames.parse(s)
		if !ok {
			return x, fmt.Errorf("fields: %q is not one of hash, cert, chain, subject, uri, dns", s)
		}
		if slices.Contains(fields, XFCCField(v)) {
			return x, fmt.Errorf("fields: %q is listed twice", s)
		}
		fields = append(fields, XFCCField(v))
	}
	if !slices.Contains(fields, XFCCHash) {
		return x, errors.New("fields must include hash: Envoy always writes Hash= (the SHA-256 of the client certificate)")
	}
	slices.Sort(fields) // Envoy's order, whatever the YAML's
	x.Fields = fields
	return x, nil
}

// xfccWarning warns about a listener that keeps the XFCC header clients
// send: every client that passes the handshake can put any identity in it,
// and backends that trust XFCC would believe it. Only a listener whose
// clients are all trusted proxies (restricted by subject_alt_names, pins or
// subjects) should use these modes. line is that of client_cert_headers.
func xfccWarning(file string, line int, l *Listener) []Problem {
	if !slices.Contains(l.ClientCertHeaders, HeaderXFCC) || !l.XFCC.Mode.Forwards() {
		return nil
	}
	ca := l.ClientAuth
	if len(ca.SubjectAltNames) > 0 || len(ca.CertificateHashes) > 0 || len(ca.SPKIHashes) > 0 || len(ca.Subjects) > 0 {
		return nil
	}
	err := fmt.Errorf("listener %q: client_cert_headers xfcc mode %s forwards the x-forwarded-client-cert header clients send, "+
		"and no subject_alt_names, pins or subjects limit the clients to trusted proxies: any client with a certificate "+
		"this listener accepts can forge identities for the backends", l.Name, l.XFCC.Mode)
	return []Problem{problemOf(l.Name, lineErr(file, line, err))}
}

// listenerWarnings are the files' warnings about listeners that are served.
func listenerWarnings(files []*ConfigFile, served []*Listener) []Problem {
	var out []Problem
	for _, cf := range files {
		for _, w := range cf.Warnings {
			if slices.ContainsFunc(served, func(l *Listener) bool { return l.Name == w.Listener && l.SourceFile == cf.File }) {
				out = append(out, w)
			}
		}
	}
	return out
}
