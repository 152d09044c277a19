package main

import (
	"fmt"
	"strings"

	"github.com/certplane/certplane/config"
)

// describeCheckRoute prints what a route matches and, when not the
// defaults, its timeouts and retries: "/" for a plain prefix route,
// "api.example.com/v1/pay (exact) [x-tenant: blue]; timeout 5s; retries 2 on reset,5xx".
func describeCheckRoute(r config.Route) string {
	s := r.Host + r.PathPrefix
	if r.Path != "" {
		s = r.Host + r.Path + " (exact)"
	}
	if len(r.Headers) > 0 {
		hs := make([]string, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = h.Name + ": " + h.Exact
		}
		s += " [" + strings.Join(hs, ", ") + "]"
	}
	var opts []string
	if r.Timeout != nil {
		opts = append(opts, "timeout "+checkDuration(*r.Timeout))
	}
	if r.IdleTimeout != nil {
		opts = append(opts, "idle timeout "+checkDuration(*r.IdleTimeout))
	}
	if r.Retries != nil {
		p := *r.Retries
		if p.Attempts == 0 {
			opts = append(opts, "no retries")
		} else {
			on := make([]string, len(p.On))
			for i, o := range p.On {
				on[i] = o.String()
			}
			opts = append(opts, fmt.Sprintf("retries %d on %s", p.Attempts, strings.Join(on, ",")))
		}
	}
	if len(opts) > 0 {
		s += " (" + strings.Join(opts, "; ") + ")"
	}
	return s
}

func checkDuration[D interface{ String() string }](d D) string {
	if s := d.String(); s != "0s" {
		return s
	}
	return "off"
}
