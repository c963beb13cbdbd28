package upgrade

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the directory of the fixtures (this package's testdata), found
// from this file's place so that any package's test can use them.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Paths of the fixtures, relative to Dir.
const (
	ServerDB   = "server/relais.db"
	DeviceDB   = "device/tablette-claire.db"
	AsideDB    = "device/tablette-ancienne.db"
	GoldenJSON = "golden.json"
)

// ServerDataDir copies the server fixture into a fresh data directory
// (0700, its database 0600, as the server makes them) and returns the
// directory: a test opens and converts the copy, never testdata.
func ServerDataDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "relais-data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(Dir(), ServerDB), filepath.Join(dir, "relais.db")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// DeviceReplica copies the device fixture (DeviceDB) to a fresh 0600
// file and returns its path.
func DeviceReplica(t testing.TB) string {
	t.Helper()
	return copyDevice(t, DeviceDB)
}

// AsideReplica copies the fixture of the device keeping cells aside
// (AsideDB) to a fresh 0600 file and returns its path.
func AsideReplica(t testing.TB) string {
	t.Helper()
	return copyDevice(t, AsideDB)
}

func copyDevice(t testing.TB, fixture string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(fixture))
	if err := copyFile(filepath.Join(Dir(), fixture), path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Expected reads the fixtures' golden content.
func Expected(t testing.TB) *Golden {
	t.Helper()
	g, err := ReadGolden(filepath.Join(Dir(), GoldenJSON))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy fixture: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copy fixture: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy fixture %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy fixture %s: %w", dst, err)
	}
	return nil
}
