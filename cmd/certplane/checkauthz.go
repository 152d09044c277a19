package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/certplane/certplane/config"
)

// checkIdentityRules prints an allow or subjects list as check shows it.
func checkIdentityRules(ms []config.IdentityMatcher) string {
	rules := make([]string, 0, len(ms))
	for _, m := range ms {
		for _, kv := range [][2]string{{"exact", m.Exact}, {"prefix", m.Prefix}, {"suffix", m.Suffix}, {"contains", m.Contains}, {"regex", m.Regex}} {
			if kv[1] != "" {
				rules = append(rules, fmt.Sprintf("%s %s %q", m.Type, kv[0], kv[1]))
			}
		}
	}
	return "[" + strings.Join(rules, "; ") + "]"
}

// checkXFCC describes the listener's XFCC policy, "" without xfcc or
// with the default (sanitize_set, every field).
func checkXFCC(l *config.Listener) string {
	def := config.DefaultXFCC()
	if !slices.Contains(l.ClientCertHeaders, config.HeaderXFCC) || l.XFCC.Mode == def.Mode && slices.Equal(l.XFCC.Fields, def.Fields) {
		return ""
	}
	fs := make([]string, len(l.XFCC.Fields))
	for i, f := range l.XFCC.Fields {
		fs[i] = f.String()
	}
	if len(fs) == 0 {
		return fmt.Sprintf(" (xfcc %s)", l.XFCC.Mode)
	}
	return fmt.Sprintf(" (xfcc %s: %s)", l.XFCC.Mode, strings.Join(fs, ", "))
}
