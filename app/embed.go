package app

import (
	"embed"
	"io/fs"
)

// dist is the built app (npm run build). all: keeps files whose name
// starts with a dot or an underscore, which esbuild may emit.
//
//go:embed all:dist
var dist embed.FS

// Files returns the built app, its root being what /app/ serves.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("app: the embedded dist directory is missing: " + err.Error()) // fixed at build time
	}
	return sub
}
