package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

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
	// Put back with PostgreSQL's tools, the database is marked restored:
	// a new history, child of the one it held, sharing its sequence (0:
	// nothing was numbered in this database).
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
	if after := historyOf(t, url); after == before || parent.String != before || shared != 0 || !strings.Contains(out, after) {
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
		{"serve", []string{"serve", "--store", url, "--addr", "127.0.0.1:0"}, 1, "PostgreSQL"},
		{"backup", []string{"backup", "--store", url, "--to", filepath.Join(t.TempDir(), "b.db")}, 1, "pg_dump"},
		{"restore from a file", []string{"restore", "--store", url, "--from", "b.db"}, 1, "pg_dump"},
		{"retention", []string{"admin", "retention", "run", "--store", url}, 1, "PostgreSQL"},
		{"not PostgreSQL", []string{"admin", "user", "list", "--store", "mysql://root@127.0.0.1/relais"}, 2, "postgres://"},
	} {
		_, errs, code := cli(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.say) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, code, tc.code, errs, tc.say)
		}
	}
}
