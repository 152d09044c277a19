package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Load reads both trees from scratch with the current time. Its error is
// non-nil only when a directory cannot be read at all; every defect of a
// file is a Problem in the returned Model, which always holds whatever is
// valid.
func Load(certsDir, configDir string) (*Model, error) {
	return Loader{}.Load(certsDir, configDir)
}

// Load reads certsDir (server/, client/, trust/) and configDir (*.yaml,
// *.yml), validates everything, and resolves references. A listener is in
// the model only when all its inputs are valid; each defect blocking it is a
// Problem naming it. Defects of items nothing references are Problems with
// Listener "".
func (l Loader) Load(certsDir, configDir string) (*Model, error) {
	for _, d := range []string{certsDir, configDir} {
		info, err := statFollow(d)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			return nil, fileErr(d, fmt.Errorf("not a directory"))
		}
	}
	servers, err := l.loadKeyPairs(filepath.Join(certsDir, "server"), RoleServer)
	if err != nil {
		return nil, err
	}
	clients, err := l.loadKeyPairs(filepath.Join(certsDir, "client"), RoleClient)
	if err != nil {
		return nil, err
	}
	trust, err := l.loadTrustStores(filepath.Join(certsDir, "trust"))
	if err != nil {
		return nil, err
	}
	files, fileProblems, err := l.loadConfigFiles(configDir)
	if err != nil {
		return nil, err
	}
	r := &resolver{
		m: &Model{
			Backends: map[string]*Backend{},
			Servers:  servers.ok,
			Clients:  clients.ok,
			Trust:    trust.ok,
			Sources:  map[string]string{},
			Problems: fileProblems,
		},
		servers: servers, clients: clients, trust: trust,
		used: map[string]bool{},
	}
	r.m.Warnings = slices.Concat(servers.warnings, clients.warnings, trust.warnings)
	r.resolve(files)
	r.resolveTrustStores(files)
	r.ocspChecks(l.ProxyOnly)
	r.issuerChecks(files, l.ProxyOnly)
	r.m.Warnings = append(r.m.Warnings, r.adminLoops(files, l.AdminAddresses)...)
	r.m.Warnings = append(r.m.Warnings, listenerWarnings(files, r.m.Listeners)...)
	if w, ok := noListeners(configDir, files, len(fileProblems)); ok {
		r.m.Warnings = append(r.m.Warnings, w)
	}
	// A trust store with a bad file is served without it (or with its last
	// good content): its defects block no listener, but they are errors.
	r.addProblems("", trust.errs)
	r.m.fingerprint()
	l.cache().sweep()
	return r.m, nil
}

// noListeners warns when the config directory defines no listener at all:
// a wrong --config, or files still to be written. Nothing is served then,
// which is not an error (serve waits for files), but it is never what an
// operator meant.
func noListeners(dir string, files []*ConfigFile, unreadable int) (Problem, bool) {
	for _, f := range files {
		if len(f.Names) > 0 {
			return Problem{}, false
		}
	}
	var err error
	switch {
	case len(files) == 0 && unreadable == 0:
		err = fmt.Errorf("holds no .yaml or .yml file: no listener is defined and nothing is served (certplane init DIR writes an example)")
	case unreadable > 0:
		err = fmt.Errorf("no listener is defined by the %d config file(s) that parse (%d more have errors): nothing is served", len(files), unreadable)
	default:
		err = fmt.Errorf("no listener is defined in its %d config file(s): nothing is served (a listener needs a top-level listeners: list)", len(files))
	}
	return Problem{File: dir, Err: fileErr(dir, err)}, true
}

// loadConfigFiles parses every YAML file of dir, in name order.
func (l Loader) loadConfigFiles(dir string) ([]*ConfigFile, []Problem, error) {
	entries, err := listDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var files []*ConfigFile
	var problems []Problem
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.name))
		if ext != ".yaml" && ext != ".yml" {
			continue
		}
		if e.err != nil {
			problems = append(problems, problemOf("", e.err))
			continue
		}
		if e.info.IsDir() {
			continue
		}
		data, info, err := readFile(e.path, l.maxFileSize())
		if err != nil {
			problems = append(problems, problemOf("", err))
			continue
		}
		// A ConfigFile is read-only once parsed (the resolver copies what
		// it changes), so one parse serves every load of the same content.
		yp := lookup(l.cache(), e.path, data, info, func() yamlParse {
			cf, err := ParseConfig(e.path, data)
			return yamlParse{cf, err}
		})
		cf, err := yp.cf, yp.err
		if err != nil {
			problems = append(problems, problemsOf("", err)...)
			continue
		}
		files = append(files, cf)
	}
	return files, problems, nil
}

// resolver joins the parsed config files with the certificate directory.
type resolver struct {
	m                *Model
	servers, clients *loaded[*KeyPair]
	trust            *loaded[*TrustStore]
	used             map[string]bool     // "server/x", "client/x", "trust/x", "backend/x"
	noCRL            map[string][]string // by trust store: subjects of its CAs without a CRL
}

type backendDef struct {
	b    *Backend
	cf   *ConfigFile
	errs []Problem // its own defects (Listener "")
}

type listenerDef struct {
	l  *Listener
	cf *ConfigFile
}

func (r *resolver) resolve(files []*ConfigFile) {
	// Listeners and backends by name, every definition kept so duplicates
	// can be reported with each place they are defined.
	listeners := map[string][]listenerDef{}
	var lnames []string
	backends := map[string][]backendDef{}
	var bnames []string
	pending := map[string][]Problem{} // listener -> its own conversion problems
	for _, cf := range files {
		for _, n := range cf.Names {
			if _, seen := listeners[n]; !seen {
				lnames = append(lnames, n)
				listeners[n] = nil
				r.m.Sources[n] = cf.File
			}
		}
		for _, p := range cf.Problems {
			if p.Listener != "" {
				pending[p.Listener] = append(pending[p.Listener], p)
			}
		}
		for _, l := range cf.Listeners {
			listeners[l.Name] = append(listeners[l.Name], listenerDef{l, cf})
		}
		for name, errs := range cf.backendErrs {
			if _, seen := backends[name]; !seen {
				bnames = append(bnames, name)
			}
			backends[name] = append(backends[name], backendDef{cf: cf, errs: errs})
		}
		for _, b := range cf.Backends {
			if _, seen := backends[b.Name]; !seen {
				bnames = append(bnames, b.Name)
			}
			backends[b.Name] = append(backends[b.Name], backendDef{b: b, cf: cf})
		}
	}
	// Count definitions, valid or not, per name and file.
	defs := map[string][]string{}
	for _, cf := range files {
		for i, n := range cf.Names {
			defs[n] = append(defs[n], fmt.Sprintf("%s:%d", cf.File, cf.nameLines[i]))
		}
	}
	sort.Strings(lnames)
	sort.Strings(bnames)

	// Backends: own defects, duplicates, then their TLS references.
	backendProblems := map[string][]Problem{}
	for _, name := range bnames {
		ds := backends[name]
		if len(ds) > 1 {
			var where []string
			for _, d := range ds {
				where = append(where, fmt.Sprintf("%s:%d", d.cf.File, d.cf.lines["backend/"+name].item))
			}
			d := ds[1]
			backendProblems[name] = append(backendProblems[name], problemOf("", lineErr(d.cf.File, d.cf.lines["backend/"+name].item,
				fmt.Errorf("backend %q is defined more than once: %s", name, strings.Join(where, ", ")))))
			continue
		}
		d := ds[0]
		if d.b == nil {
			backendProblems[name] = d.errs
			continue
		}
		if ps := r.backendRefs(d); len(ps) > 0 {
			backendProblems[name] = ps
			continue
		}
		b := *d.b // the parse is cached and shared: the model gets its own copy
		r.m.Backends[name] = &b
	}

	// Listeners. Port clashes are found among every listener that converted,
	// whatever else is wrong with it, so fixing one defect never uncovers a
	// clash that takes down a listener that was being served.
	var converted []listenerDef
	for _, name := range lnames {
		if len(defs[name]) == 1 && len(listeners[name]) == 1 {
			converted = append(converted, listeners[name][0])
		}
	}
	clashes := r.portClashes(converted)
	shared := r.sharedAddresses(converted)
	loops := r.selfLoops(converted, files)
	for _, name := range lnames {
		var ps []Problem
		ps = append(ps, pending[name]...)
		if len(defs[name]) > 1 {
			f, line := splitWhere(defs[name][1])
			ps = append(ps, problemOf(name, lineErr(f, line, fmt.Errorf("listener %q is defined more than once: %s", name, strings.Join(defs[name], ", ")))))
		}
		ds := listeners[name]
		if len(ps) == 0 && len(ds) == 1 {
			ps = append(ps, r.listenerRefs(ds[0], backendProblems)...)
			ps = append(ps, clashes[name]...)
			ps = append(ps, shared.problems[name]...)
			ps = append(ps, loops[name]...)
		}
		if len(ps) > 0 {
			r.addProblems(name, ps)
			continue
		}
		l := *ds[0].l // the parse is cached and shared: the model gets its own copy
		l.SharedAddress, l.PeerServerNames = shared.shared[name], shared.peers[name]
		r.m.Listeners = append(r.m.Listeners, &l)
		r.fullChainWarnings(ds[0])
	}
	// Defects of things no listener uses are still reported, once.
	for _, name := range bnames {
		if !r.used["backend/"+name] {
			r.addProblems("", backendProblems[name])
		}
	}
	for _, kind := range []struct {
		prefix string
		bad    map[string][]Problem
	}{{"server/", r.servers.bad}, {"client/", r.clients.bad}, {"trust/", r.trust.bad}} {
		names := make([]string, 0, len(kind.bad))
		for n := range kind.bad {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if !r.used[kind.prefix+n] {
				r.addProblems("", kind.bad[n])
			}
		}
	}
}

// addProblems records ps for listener, dropping repeats of the same text.
func (r *resolver) addProblems(listener string, ps []Problem) {
	for _, p := range ps {
		p.Listener = listener
		dup := slices.ContainsFunc(r.m.Problems, func(q Problem) bool {
			return q.Listener == p.Listener && q.Err.Error() == p.Err.Error()
		})
		if !dup {
			r.m.Problems = append(r.m.Problems, p)
		}
	}
}

func splitWhere(s string) (string, int) {
	i := strings.LastIndexByte(s, ':')
	var line int
	fmt.Sscanf(s[i+1:], "%d", &line)
	return s[:i], line
}

// backendRefs resolves a backend's trust store and client certificate.
func (r *resolver) backendRefs(d backendDef) []Problem {
	t := d.b.TLS
	if t == nil {
		return nil
	}
	line := d.cf.lines["backend/"+d.b.Name].tls
	var ps []Problem
	ps = append(ps, r.ref(r.trust.bad, r.trust.ok[t.TrustStore] != nil, "trust/", t.TrustStore, d.cf.File, line,
		fmt.Sprintf("backend %q: tls: trust store %q", d.b.Name, t.TrustStore))...)
	if t.Certificate != "" {
		ps = append(ps, r.ref(r.clients.bad, r.clients.ok[t.Certificate] != nil, "client/", t.Certificate, d.cf.File, line,
			fmt.Sprintf("backend %q: tls: client certificate %q", d.b.Name, t.Certificate))...)
	}
	return ps
}

// ref resolves one name: nil when valid, its own problems when invalid, a
// "not found" problem at the referring line when absent.
func (r *resolver) ref(bad map[string][]Problem, ok bool, prefix, name, file string, line int, what string) []Problem {
	r.used[prefix+name] = true
	if ok {
		return nil
	}
	if ps, isBad := bad[name]; isBad {
		return ps
	}
	var want string
	switch prefix {
	case "server/", "client/":
		dir := "certs/" + strings.TrimSuffix(prefix, "/")
		want = fmt.Sprintf("want %s/%s/tls.crt and tls.key, or %s/%s.crt and %s.key", dir, name, dir, name, name)
	case "trust/":
		want = fmt.Sprintf("want a directory certs/trust/%s/ with *.pem or *.crt files", name)
	}
	return []Problem{problemOf("", lineErr(file, line, fmt.Errorf("%s not found: %s", what, want)))}
}

// listenerRefs resolves a listener's certificates, trust store and backends.
func (r *resolver) listenerRefs(d listenerDef, backendProblems map[string][]Problem) []Problem {
	l, lines := d.l, d.cf.lines[d.l.Name]
	var ps []Problem
	for _, c := range l.Certificates {
		ps = append(ps, r.ref(r.servers.bad, r.servers.ok[c] != nil, "server/", c, d.cf.File, lines.certs,
			fmt.Sprintf("listener %q: certificate %q", l.Name, c))...)
	}
	if l.ClientAuth.TrustStore != "" {
		ps = append(ps, r.ref(r.trust.bad, r.trust.ok[l.ClientAuth.TrustStore] != nil, "trust/", l.ClientAuth.TrustStore, d.cf.File, lines.trust,
			fmt.Sprintf("listener %q: client_auth: trust store %q", l.Name, l.ClientAuth.TrustStore))...)
	}
	for i, rt := range l.Routes {
		r.used["backend/"+rt.Backend] = true
		if r.m.Backends[rt.Backend] != nil {
			continue
		}
		if bp, isBad := backendProblems[rt.Backend]; isBad {
			ps = append(ps, bp...)
			continue
		}
		line := lines.routes
		if i < len(lines.routeLine) {
			line = lines.routeLine[i]
		}
		ps = append(ps, problemOf("", lineErr(d.cf.File, line, fmt.Errorf("listener %q: routes[%d]: backend %q is not defined in any config file", l.Name, i, rt.Backend))))
	}
	if len(ps) == 0 {
		ps = append(ps, r.sniRules(d)...)
	}
	return ps
}

// sniRules checks a listener with several certificates: each one after the
// first is chosen by SNI from its DNS SANs, so it needs some, and no DNS
// name may pick two certificates (Envoy rejects duplicate filter chain
// matches).
func (r *resolver) sniRules(d listenerDef) []Problem {
	l := d.l
	if len(l.Certificates) < 2 {
		return nil
	}
	line := d.cf.lines[l.Name].certs
	owner := map[string]string{}
	for i, name := range l.Certificates {
		kp := r.servers.ok[name]
		leaf := kp.Chain[0]
		if i > 0 && len(leaf.DNSNames) == 0 {
			return []Problem{problemOf("", lineErr(d.cf.File, line, fmt.Errorf(
				"listener %q: certificate %q (%s) has no DNS SAN; every certificate after the first is chosen by SNI and needs at least one", l.Name, name, kp.CertFile)))}
		}
		for _, dns := range leaf.DNSNames {
			k := strings.ToLower(dns)
			if prev, dup := owner[k]; dup && prev != name {
				return []Problem{problemOf("", lineErr(d.cf.File, line, fmt.Errorf(
					"listener %q: DNS name %q is in both certificate %q and certificate %q; SNI could not choose between them", l.Name, dns, prev, name)))}
			}
			owner[k] = name
		}
	}
	return nil
}

// portClashes finds listeners that would bind the same port on overlapping
// but different addresses (0.0.0.0:8443 covers 127.0.0.1:8443): each gets
// a problem. Exactly the same address is shared (sharedaddr.go).
func (r *resolver) portClashes(ds []listenerDef) map[string][]Problem {
	out := map[string][]Problem{}
	for i, a := range ds {
		for j, b := range ds {
			if i == j || a.l.Port != b.l.Port || !overlap(a.l.Host, b.l.Host) || sameAddress(a.l, b.l) {
				continue
			}
			out[a.l.Name] = append(out[a.l.Name], problemOf("", lineErr(a.cf.File, a.cf.lines[a.l.Name].item, fmt.Errorf(
				"listener %q: address %s clashes with listener %q (%s, %s:%d): two listeners cannot share a port on overlapping addresses",
				a.l.Name, a.l.Address, b.l.Name, b.l.Address, b.cf.File, b.cf.lines[b.l.Name].item))))
		}
	}
	return out
}

// overlap reports whether two listen IPs of one port collide. Envoy binds
// :: with IPV6_V6ONLY, so the IPv4 and IPv6 wildcards do not collide.
func overlap(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	x, y = x.Unmap(), y.Unmap()
	if x.Is4() != y.Is4() {
		return false
	}
	return x == y || x.IsUnspecified() || y.IsUnspecified()
}

// fullChainWarnings warns when full-chain CRL checking is on and a CA of the
// store has no CRL: every certificate under that CA would be refused
// ("unable to get certificate CRL"), as in Envoy. One warning per listener,
// naming at most maxNoCRLNamed CAs: with 1,000 listeners on a store of
// 10,000 CAs, one warning per listener and CA was ten million strings.
func (r *resolver) fullChainWarnings(d listenerDef) {
	ca := d.l.ClientAuth
	if ca.TrustStore == "" || ca.CRL != CRLFullChain {
		return
	}
	ts := r.m.Trust[ca.TrustStore]
	if ts == nil || len(ts.CRLs) == 0 {
		return
	}
	missing := r.casWithoutCRL(ts)
	if len(missing) == 0 {
		return
	}
	dir := ts.Name
	if len(ts.Files) > 0 {
		dir = filepath.Dir(ts.Files[0])
	}
	var err error
	if len(missing) == 1 {
		err = fmt.Errorf("listener %q checks CRLs for the full chain, but CA %s has no CRL in trust store %q: every client certificate under it will be refused (unable to get CRL); add its CRL or set crl: leaf_only",
			d.l.Name, missing[0], ts.Name)
	} else {
		named := strings.Join(missing[:min(len(missing), maxNoCRLNamed)], "; ")
		if more := len(missing) - maxNoCRLNamed; more > 0 {
			named += fmt.Sprintf("; and %d more", more)
		}
		err = fmt.Errorf("listener %q checks CRLs for the full chain, but %d CAs have no CRL in trust store %q (%s): every client certificate under them will be refused (unable to get CRL); add their CRLs or set crl: leaf_only",
			d.l.Name, len(missing), ts.Name, named)
	}
	r.m.Warnings = append(r.m.Warnings, problemOf(d.l.Name, fileErr(dir, err)))
}

// maxNoCRLNamed bounds the CAs a full-chain warning names.
const maxNoCRLNamed = 5

// casWithoutCRL returns the subjects of the CAs of ts that no CRL of ts is
// issued by, computed once per store however many listeners use it.
func (r *resolver) casWithoutCRL(ts *TrustStore) []string {
	if got, ok := r.noCRL[ts.Name]; ok {
		return got
	}
	issuers := make(map[string]bool, len(ts.CRLs))
	for _, c := range ts.CRLs {
		issuers[string(c.RawIssuer)] = true
	}
	missing := []string{}
	for _, c := range ts.CAs {
		if !issuers[string(c.RawSubject)] {
			missing = append(missing, subjectOf(c))
		}
	}
	if r.noCRL == nil {
		r.noCRL = map[string][]string{}
	}
	r.noCRL[ts.Name] = missing
	return missing
}
