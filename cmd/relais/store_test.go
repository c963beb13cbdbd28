package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/server"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// historyOf reads the history identity of a PostgreSQL store.
func historyOf(t *testing.T, url string) string {
	t.Helper()
	db, err := server.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := server.HistoryOf(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// cliEnv runs a command with the given environment variables.
func cliEnv(t *testing.T, vars map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code = run(context.Background(), args, e)
	return out.String(), errb.String(), code
}

// TestTwoServesOnOnePostgres: two `relais serve --store` processes on one
// database; an account made by the admin command, two devices that log
// in and sync each through its own server, and what one writes the other
// receives.
func TestTwoServesOnOnePostgres(t *testing.T) {
	url := pgtest.DB(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	one := startServe(t, bin, freeAddr(t), "--store", url, "--data", filepath.Join(dir, "unused"))
	// The second through RELAIS_STORE, as a deployment would set it.
	two := startServeEnv(t, bin, freeAddr(t), []string{"RELAIS_STORE=" + url})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first server's logs:\n%s\nsecond server's logs:\n%s", one.logs.String(), two.logs.String())
		}
	})
	for _, s := range []*served{one, two} {
		if !waitHealthy(s.url, 30*time.Second) {
			t.Fatalf("server on PostgreSQL never became healthy; logs:\n%s", s.logs.String())
		}
	}
	relais(t, bin, "un-mot-de-passe\n", "admin", "user", "add", "--store", url, "--email", "camille@exemple.fr", "--role", "admin", "--password-stdin")
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	relais(t, bin, "un-mot-de-passe\n", "device", "login", "--db", a, "--server", one.url, "--email", "camille@exemple.fr", "--password-stdin")
	relais(t, bin, "un-mot-de-passe\n", "device", "login", "--db", b, "--server", two.url, "--email", "camille@exemple.fr", "--password-stdin")
	id := "01928a10-0000-7000-8000-000000000001"
	relais(t, bin, "", "device", "sql", "--db", a, fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 45, 'Laval')", id))
	if out := relais(t, bin, "", "device", "sync", "--db", a); !strings.Contains(out, "Envoyées : 3") {
		t.Fatalf("sync of a through the first server: %s\nlogs:\n%s", out, one.logs.String())
	}
	relais(t, bin, "", "device", "sync", "--db", b)
	out := relais(t, bin, "", "device", "sql", "--db", b, "--csv", "SELECT id, type, duree, commune FROM activite")
	if want := "id,type,duree,commune\n" + id + ",individuel,45,Laval\n"; out != want {
		t.Fatalf("device b, through the second server, holds:\n%s\nwant:\n%s", out, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "unused")); err == nil {
		t.Errorf("a server on PostgreSQL created a data directory")
	}
}

// startServeEnv is startServe with environment variables added.
func startServeEnv(t *testing.T, bin, addr string, vars []string) *served {
	t.Helper()
	s := &served{addr: addr, url: "http://" + addr, logs: &syncBuffer{}, exited: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve", "--addr", addr)
	s.cmd.Env = append(os.Environ(), vars...)
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// TestStoreFlag: the admin commands that manage accounts, devices and
// keys run on a PostgreSQL database named by --store or RELAIS_STORE;
// what does not run there yet says so instead of falling back on an
// empty SQLite directory, and an address that is not PostgreSQL's is a
// usage error.
func TestStoreFlag(t *testing.T) {
	url := pgtest.DB(t)
	viaEnv := map[string]string{"RELAIS_STORE": url}
	const pw = "un-mot-de-passe-solide\n"
	if _, errs, code := cli(t, pw, "admin", "user", "add", "--store", url, "--email", "Camille@exemple.fr", "--role", "conseiller", "--password-stdin"); code != 0 {
		t.Fatalf("user add on PostgreSQL: exit %d: %s", code, errs)
	}
	if _, errs, code := cliEnv(t, viaEnv, pw, "admin", "user", "add", "--email", "camille@EXEMPLE.fr", "--password-stdin"); code != 1 {
		t.Fatalf("the same address again, in another case: exit %d: %s", code, errs)
	}
	out, errs, code := cliEnv(t, viaEnv, "", "admin", "user", "list")
	if code != 0 || !strings.Contains(out, "Camille@exemple.fr") {
		t.Fatalf("user list with RELAIS_STORE: exit %d, out %q, err %q", code, out, errs)
	}
	if _, errs, code := cli(t, "", "admin", "keys", "rotate", "--store", url); code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, errs)
	}
	// The coordinations, read from the domain tables, with the people's
	// addresses.
	_, errs, code = cli(t, pw, "admin", "user", "add", "--store", url, "--email", "denise@exemple.fr", "--role", "coordinateur", "--password-stdin")
	if code != 0 {
		t.Fatalf("user add: exit %d: %s", code, errs)
	}
	db, err := server.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var denise, camille string
	for email, id := range map[string]*string{"denise@exemple.fr": &denise, "camille@exemple.fr": &camille} {
		if err := db.R.QueryRow("SELECT id FROM _users WHERE email = ?", email).Scan(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.W.Exec("INSERT INTO coordination (id, coordinateur_id, mediateur_id, debut) VALUES ('co-1', ?, ?, '2026-01-05')", denise, camille); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out, errs, code := cli(t, "", "admin", "coordination", "list", "--store", url); code != 0 ||
		!strings.Contains(out, "denise@exemple.fr") || !strings.Contains(out, "Camille@exemple.fr") || !strings.Contains(out, "co-1") {
		t.Fatalf("coordination list on PostgreSQL: exit %d, out %q, err %q", code, out, errs)
	}
	// The commands that write synced data write as one more server.
	if out, errs, code := cli(t, "", "admin", "coordination", "add", "--store", url, "--coordinateur", "denise@exemple.fr",
		"--mediateur", "camille@exemple.fr", "--from", "2026-03-01"); code != 0 {
		t.Fatalf("coordination add on PostgreSQL: exit %d, out %q, err %q", code, out, errs)
	}
	if out, _, _ := cli(t, "", "admin", "coordination", "list", "--store", url); !strings.Contains(out, "à partir du 2026-03-01") {
		t.Fatalf("the coordination added is not listed: %q", out)
	}
	if out, errs, code := cli(t, "", "admin", "retention", "run", "--store", url); code != 0 || !strings.Contains(out, "0 bénéficiaire") {
		t.Fatalf("retention on PostgreSQL: exit %d, out %q, err %q", code, out, errs)
	}
	if _, errs, code := cli(t, "", "admin", "beneficiaire", "erase", "--store", url, "--id", "01a23675-0000-7000-8000-000000000000"); code != 1 || errs == "" {
		t.Fatalf("erasing a beneficiary nobody has: exit %d, err %q", code, errs)
	}
	db, err = server.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := db.R.QueryRow("SELECT seq FROM _replica WHERE id = 1").Scan(&seq); err != nil || seq == 0 {
		t.Fatalf("sequence %d after a coordination was added (%v)", seq, err)
	}
	db.Close()
	// Put back with PostgreSQL's tools, the database is marked restored:
	// a new history, child of the one it held, sharing its sequence.
	before := historyOf(t, url)
	out, errs, code = cli(t, "", "restore", "--store", url)
	if code != 0 || !strings.Contains(out, "Nouvel historique") {
		t.Fatalf("restore --store: exit %d, out %q, err %q", code, out, errs)
	}
	db, err = server.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var parent sql.NullString
	var shared int64
	if err := db.R.QueryRow("SELECT parent, shared_seq FROM _history WHERE id = 1").Scan(&parent, &shared); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if after := historyOf(t, url); after == before || parent.String != before || shared != seq || !strings.Contains(out, after) {
		t.Fatalf("restore --store: history %s → %s, parent %q, output %q", before, after, parent.String, out)
	}
	if out, _, code := cli(t, "", "admin", "user", "list", "--data", filepath.Join(t.TempDir(), "rien")); code == 0 || strings.Contains(out, "Camille") {
		t.Fatalf("without --store the data directory is read: exit %d, out %q", code, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"backup", []string{"backup", "--store", url, "--to", filepath.Join(t.TempDir(), "b.db")}, 1, "pg_dump"},
		{"restore from a file", []string{"restore", "--store", url, "--from", "b.db"}, 1, "pg_dump"},
		{"not PostgreSQL", []string{"admin", "user", "list", "--store", "mysql://root@127.0.0.1/relais"}, 2, "postgres://"},
	} {
		_, errs, code := cli(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.say) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, code, tc.code, errs, tc.say)
		}
	}
}

// TestDemoOnPostgres: relais demo --store fills a PostgreSQL store that
// the admin commands then read, and says where the data went.
func TestDemoOnPostgres(t *testing.T) {
	url := pgtest.DB(t)
	unused := filepath.Join(t.TempDir(), "unused")
	out, errs, code := cli(t, "", "demo", "--store", url, "--size", "300", "--until", "2026-03-01", "--data", unused)
	if code != 0 {
		t.Fatalf("relais demo --store: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "base PostgreSQL partagée") || !strings.Contains(out, "activités") {
		t.Errorf("the summary does not say where the demo went:\n%s", out)
	}
	users, errs, code := cli(t, "", "admin", "user", "list", "--store", url)
	if code != 0 || !strings.Contains(users, "@demo.relais.fr") {
		t.Errorf("admin user list --store after the demo: exit %d, %s\n%s", code, errs, users)
	}
	if _, err := os.Stat(unused); err == nil {
		t.Errorf("the demo on PostgreSQL wrote a data directory")
	}
}
