package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/certplane/certplane/status"
)

// assets are the status page's files. The page fetches nothing from
// elsewhere: an admin port is often reachable only from a bastion host.
//
//go:embed assets/index.html assets/page.css assets/page.js
var assets embed.FS

// statusPlaceholder is replaced by the /status document, so the first paint
// has data and a headless browser's DOM dump sees the rows at once.
var statusPlaceholder = []byte("{{STATUS}}")

// pageCSP allows only the page's own script, style and /status: the page
// shows file names and subjects that an operator, or an attacker who can
// write a certificate, chose.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the status page at / and its assets under /assets/.
type page struct {
	index  []byte
	status func() any
	log    *slog.Logger
}

func newPage(status func() any, log *slog.Logger) (*page, error) {
	index, err := assets.ReadFile("assets/index.html")
	if err != nil {
		return nil, err
	}
	return &page{index: index, status: status, log: log}, nil
}

func (p *page) serveIndex(w http.ResponseWriter, _ *http.Request) {
	var doc any = status.Status{}
	if p.status != nil {
		doc = p.status()
	}
	// json.Marshal escapes <, > and &, so the document cannot close the
	// <script> element it is embedded in.
	b, err := json.Marshal(doc)
	if err != nil {
		p.log.Error("encode status for the page", "err", err)
		plain(w, http.StatusInternalServerError, "cannot encode status\n")
		return
	}
	body := bytes.Replace(p.index, statusPlaceholder, b, 1)
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (p *page) assetHandler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		if r.URL.Path == "/assets/" || r.URL.Path == "/assets/index.html" {
			http.NotFound(w, r) // no listing, and the page only at /
			return
		}
		files.ServeHTTP(w, r)
	})
}

func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
}
