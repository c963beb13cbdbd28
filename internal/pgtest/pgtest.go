// Package pgtest gives tests a real PostgreSQL: the server named by
// RELAIS_TEST_PG (what .ci/run starts), or else a throw-away cluster it
// starts itself with Debian's binaries (initdb into a temporary
// directory, pg_ctl on a loopback port), and one fresh database per test.
//
// When no PostgreSQL can be had, the tests that need one are skipped,
// unless RELAIS_REQUIRE_PG=1 (set by .ci/run): then they fail, so a CI
// machine without PostgreSQL never passes by skipping them.
//
// A package whose tests use it runs them through Main, which stops the
// cluster it may have started once the package's tests are done.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Environment variables read by the harness.
const (
	// EnvURL names a running server, as a URL whose user may create
	// databases (postgres://postgres@127.0.0.1:5432/postgres).
	EnvURL = "RELAIS_TEST_PG"
	// EnvRequire, set to 1, turns "no PostgreSQL here" from a skip into a
	// failure.
	EnvRequire = "RELAIS_REQUIRE_PG"
)

var (
	mu       sync.Mutex
	started  *cluster // the cluster this process started, if any
	adminURL string
	startErr error
	tried    bool
	inMain   bool
)

// Main runs a package's tests (call it from TestMain) and stops the
// cluster pgtest started for them, if it started one.
func Main(m *testing.M) {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	if started != nil {
		started.stop()
		started = nil
	}
	mu.Unlock()
	os.Exit(code)
}

// Required reports whether the environment demands a PostgreSQL.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Server returns the URL of a PostgreSQL server's maintenance database,
// starting a cluster the first time when RELAIS_TEST_PG is not set. It
// skips the test when none can be had, or fails it when one is required.
func Server(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !tried {
		tried = true
		adminURL, startErr = find()
	}
	if startErr != nil {
		if Required() {
			t.Fatalf("PostgreSQL required (%s=1) but not available: %v", EnvRequire, startErr)
		}
		t.Skipf("no PostgreSQL (%v); set %s or install Debian's postgresql", startErr, EnvURL)
	}
	return adminURL
}

func find() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, ping(u)
	}
	if !inMain {
		// Without Main nobody would stop the cluster: it would outlive
		// the test binary.
		return "", errors.New("this package's TestMain must call pgtest.Main to start a throw-away cluster")
	}
	c, err := start()
	if err != nil {
		return "", err
	}
	started = c
	return c.url, nil
}

func ping(u string) error {
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", redact(u), err)
	}
	return nil
}

// DB creates an empty database for this test and returns its URL; the
// database is dropped when the test ends.
func DB(t testing.TB) string {
	t.Helper()
	admin := Server(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "relais_test_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx := context.Background()
	// template0: a copy of template1 would carry whatever someone added
	// to it on a developer's server.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		db.Close()
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// cluster is a PostgreSQL cluster started by this process.
type cluster struct {
	dir, data, bin string
	asPostgres     bool // commands run as the postgres user (we are root)
	url            string
}

// Binaries returns the directory holding initdb and pg_ctl: the PATH's,
// or else the newest of Debian's /usr/lib/postgresql/N/bin.
func Binaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found (apt-get install postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func start() (*cluster, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "relais-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, data: filepath.Join(dir, "data"), bin: bin, asPostgres: os.Geteuid() == 0}
	if c.asPostgres {
		// PostgreSQL refuses to run as root.
		pg, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// The port is picked free, then bound by PostgreSQL: another process
	// may take it in between, hence the few tries.
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		// A throw-away cluster: no fsync, no full pages, commits not
		// waited for. Durability is what PostgreSQL itself tests.
		opts := fmt.Sprintf("-p %d -h 127.0.0.1 -k %s -F -c full_page_writes=off -c synchronous_commit=off -c max_connections=400 -c shared_buffers=64MB", port, dir)
		out, err := c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		if try == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
		}
	}
}

func (c *cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func (c *cluster) stop() {
	_, _ = c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
	os.RemoveAll(c.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unreadable URL)"
	}
	return strings.Replace(p.Redacted(), "xxxxx", "…", 1)
}
