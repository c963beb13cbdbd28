package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time for releases:
//
//	go build -ldflags "-X main.version=1.2.0" ./cmd/relais
//
// Otherwise the version control revision Go stamps into the binary says
// which code it is.
var version = "dev"

func runVersion(ctx context.Context, args []string, e *env) error {
	fs := newFlags("version", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, versionLine())
	return nil
}

func versionLine() string {
	line := "relais " + version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return line
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modifié)"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		line += " révision " + rev + modified
		if at != "" {
			line += " du " + at
		}
	}
	return line + ", " + info.GoVersion
}
