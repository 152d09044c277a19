package mtls

import matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

// StringMatcher is Envoy's StringMatcher (exact, prefix, suffix, contains,
// safe_regex; ignore_case), the one the SAN matchers use, for the proxy's
// route header matchers and header-mutation key matchers.
type StringMatcher struct{ m *stringMatcher }

// CompileStringMatcher checks and compiles m.
func CompileStringMatcher(m *matcherv3.StringMatcher) (*StringMatcher, error) {
	sm, err := compileStringMatcher(m)
	if err != nil {
		return nil, err
	}
	return &StringMatcher{sm}, nil
}

// Match reports whether s matches.
func (m *StringMatcher) Match(s string) bool { return m.m.match(s) }
