package relaistest

import (
	"context"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
)

// NewerDomain is the embedded domain migrations plus those in dir: the
// schema of a "newer release", for tests of schema evolution
// (domain/testdata/newer holds one).
func NewerDomain(t testing.TB, dir string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	cur, err := migrations.FS(migrations.Domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []fs.FS{cur, os.DirFS(dir)} {
		names, err := fs.Glob(src, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			data, err := fs.ReadFile(src, n)
			if err != nil {
				t.Fatal(err)
			}
			m[n] = &fstest.MapFile{Data: data}
		}
	}
	return m
}

// MigrateFile applies sets, then the domain migrations of newer, to a
// database file, as a newer release of the server or the app would at
// start.
func MigrateFile(t testing.TB, path string, newer fs.FS, sets ...migrations.Set) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := migrations.Up(ctx, db.W, sets...); err != nil {
		t.Fatal(err)
	}
	if err := migrations.UpFS(ctx, db.W, migrations.Domain, newer); err != nil {
		t.Fatal(err)
	}
}
