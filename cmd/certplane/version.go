package main

import (
	"context"
	"fmt"
	"io"

	"github.com/certplane/certplane/internal/buildinfo"
)

func init() {
	register("version", command{
		summary: "print the version, commit and Go version of this binary",
		run:     runVersion,
	})
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "certplane version", `Print the module version (or "devel" for a build from a checkout), the
commit the binary was built from and the Go version. The same values are in
/metrics as certplane_build_info and in the node user agent the proxy sends
to an xDS server.`)
	if err := parseCLIFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	i := buildinfo.Get()
	commit := i.Commit
	if commit == "" {
		commit = "unknown"
	} else if i.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(stdout, "certplane %s\ncommit %s\n%s\n", i.Version, commit, i.GoVersion)
	return nil
}
