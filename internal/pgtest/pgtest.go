// Package pgtest gives tests a real PostgreSQL: the server named by
// RELAIS_TEST_PG (what .ci/run starts), or else a throw-away cluster it
// starts itself with Debian's binaries (initdb into a temporary
// directory, the postmaster on a loopback port, as the postgres user when
// the tests run as root), and one fresh database per test.
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
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with work of its own after the tests: it
// returns the tests' exit code instead of exiting.
func Run(m *testing.M) int {
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
	return code
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
	cred           *syscall.Credential // the postgres user's, when we are root
	url            string
	proc           *exec.Cmd
	exited         chan struct{}
}

// Binaries returns the directory holding initdb and postgres: the PATH's,
// or else the newest of Debian's /usr/lib/postgresql/N/bin.
func Binaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
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
	return "", errors.New("initdb and postgres not found (apt-get install postgresql)")
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
	c := &cluster{dir: dir, data: filepath.Join(dir, "data"), bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: its processes run as the
		// postgres user, which must own the directory.
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
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	initdb := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
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
		if err := c.run(port); err == nil {
			return c, nil
		} else if try == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// run starts the postmaster as a child of this process and waits until it
// answers. It is started with a parent-death signal, so that a test binary
// killed midway (a timeout, ^C) takes its cluster with it instead of
// leaving it running; the signal follows the thread that started the
// child, so that thread is kept for the child's life.
func (c *cluster) run(port int) error {
	// A throw-away cluster: no fsync, no full pages, commits not waited
	// for. Durability is what PostgreSQL itself tests.
	c.proc = c.command("postgres", "-D", c.data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", c.dir, "-F",
		"-c", "full_page_writes=off", "-c", "synchronous_commit=off", "-c", "max_connections=400", "-c", "shared_buffers=64MB")
	logf, err := os.Create(filepath.Join(c.dir, "log"))
	if err != nil {
		return err
	}
	c.proc.Stdout, c.proc.Stderr = logf, logf
	c.proc.SysProcAttr.Pdeathsig = syscall.SIGQUIT // immediate shutdown
	c.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, after the child
		defer close(c.exited)
		defer logf.Close()
		if err := c.proc.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = c.proc.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-c.exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
			return fmt.Errorf("postgres stopped at start:\n%s", log)
		default:
		}
		if ping(c.url) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return errors.New("postgres did not answer within 90 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

// stop shuts the cluster down at once (nothing in it is kept) and
// removes its files.
func (c *cluster) stop() {
	if c.proc != nil && c.proc.Process != nil {
		_ = c.proc.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.proc.Process.Kill()
			<-c.exited
		}
	}
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
