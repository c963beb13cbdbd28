package reliability

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/store"

	_ "github.com/mattn/go-sqlite3" // the sqlite3 driver for openRead
)

// relaisBin is the real binary, built once for the package's tests.
var relaisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relais-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	relaisBin = filepath.Join(dir, "relais")
	build := exec.Command("go", "build", "-o", relaisBin, "github.com/relais-numerique/relais/cmd/relais")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: build the relais binary:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serverProc is the real `relais serve` running as a child process.
type serverProc struct {
	t    *testing.T
	data string
	// store, when set, is the PostgreSQL database the server runs on
	// (--store) instead of the data directory.
	store string
	addr  string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	done  chan struct{}
}

func startServerProc(t *testing.T, data, addr string, extra ...string) *serverProc {
	t.Helper()
	p := &serverProc{t: t, data: data, addr: addr}
	p.start(extra...)
	t.Cleanup(func() { p.kill() })
	return p
}

// startServerOn starts `relais serve` on a PostgreSQL database.
func startServerOn(t *testing.T, storeURL, addr string, extra ...string) *serverProc {
	t.Helper()
	p := &serverProc{t: t, store: storeURL, addr: addr}
	p.start(extra...)
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *serverProc) URL() string { return "http://" + p.addr }

func (p *serverProc) start(extra ...string) {
	p.t.Helper()
	args := []string{"serve", "--data", p.data, "--addr", p.addr}
	if p.store != "" {
		args = []string{"serve", "--store", p.store, "--addr", p.addr}
	}
	args = append(args, extra...)
	p.cmd = exec.Command(relaisBin, args...)
	p.log = &bytes.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start relais serve: %v", err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(p.cmd, p.done)
	// Wait until it answers, bounded.
	client := &http.Client{Timeout: time.Second}
	for i := 0; i < 200; i++ {
		select {
		case <-p.done:
			p.t.Fatalf("relais serve exited at start:\n%s", p.log.String())
		default:
		}
		res, err := client.Get(p.URL() + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("relais serve did not answer /healthz within 10 s:\n%s", p.log.String())
}

// kill sends SIGKILL: no shutdown hook runs, no transaction is finished.
func (p *serverProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// relaisCmd runs the binary to completion with stdin and returns its output.
func relaisCmd(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(relaisBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("relais %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// integrity opens a database file the way Relais does (which also replays
// its WAL) and runs SQLite's integrity check.
func integrity(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	res, err := db.IntegrityCheck(context.Background())
	if err != nil || res != "ok" {
		t.Fatalf("integrity check of %s: %q %v", path, res, err)
	}
}

// dumpFile returns the canonical dump of a replica file (see
// relaistest.DumpReplica).
func dumpFile(t *testing.T, path string) (string, string) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	return dumpDB(t, db.R)
}

func dumpDB(t *testing.T, db *sql.DB) (string, string) {
	t.Helper()
	ctx := context.Background()
	schema, err := relaistest.LoadSchema(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	h, text, err := relaistest.DumpReplica(ctx, db, schema)
	if err != nil {
		t.Fatal(err)
	}
	return h, text
}

// openRead opens a database file read-only, for checks at rest.
func openRead(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}
