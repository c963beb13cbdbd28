package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// cliEnv runs one relais command in-process with a short retry window,
// so a test of an unreachable server does not wait the CLI's 15 s.
func cliFast(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, retryFor: time.Second}
	code = run(context.Background(), args, e)
	return out.String(), errb.String(), code
}

// noFile fails the test if path exists, or if anything was created in
// dir besides what existed before.
func noFile(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s: %s was created", what, path)
	}
}

func frenchOnly(t *testing.T, what, msg string) {
	t.Helper()
	for _, en := range []string{"connection refused", "dial tcp", "bad_credentials", "rate_limited", "no such", "constraint failed", "must be a UUID", "incomplete input", "syntax error", "flag:", "not logged in"} {
		if strings.Contains(msg, en) {
			t.Errorf("%s: message shows technical English %q: %s", what, en, msg)
		}
	}
}

// Every message a conseillère or an administrator may read from the
// device and admin commands: French, saying what happened and what to
// do, with the right exit code, and no file created by a command that
// only reads or by a failed login.
func TestPeopleMessages(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := relaistest.StartServer(t, server.Config{DataDir: data, LoginFailuresPerAccount: 3, LoginWindow: time.Hour})
	const pw = "un-mot-de-passe-solide\n"
	if _, errs, code := cli(t, pw, "admin", "user", "add", "--data", data, "--email", "camille@exemple.fr", "--password-stdin"); code != 0 {
		t.Fatalf("user add: %s", errs)
	}
	if _, errs, code := cli(t, "", "admin", "user", "add", "--data", data, "--email", "camille@exemple.fr", "--password-stdin"); code != 2 || !strings.Contains(errs, "aucun mot de passe sur l'entrée standard") {
		t.Errorf("user add without password: %d %s", code, errs)
	}
	if _, errs, code := cli(t, pw, "admin", "user", "add", "--data", data, "--email", "camille@exemple.fr", "--password-stdin"); code != 1 || !strings.Contains(errs, "un compte camille@exemple.fr existe déjà") {
		t.Errorf("user add twice: %d %s", code, errs)
	}
	if _, errs, code := cli(t, "court\n", "admin", "user", "add", "--data", data, "--email", "paul@exemple.fr", "--password-stdin"); code != 2 || !strings.Contains(errs, "de 8 à 72 caractères") {
		t.Errorf("user add, short password: %d %s", code, errs)
	}

	type check struct {
		name   string
		stdin  string
		args   []string
		code   int
		want   string
		absent string // a file that must not exist afterwards
	}
	tab := filepath.Join(dir, "tablette.db")
	for _, tc := range []check{
		{"status of a missing file", "", []string{"device", "status", "--db", filepath.Join(dir, "tablete.db")}, 1,
			"aucun appareil dans le fichier", filepath.Join(dir, "tablete.db")},
		{"sync of a missing file", "", []string{"device", "sync", "--db", filepath.Join(dir, "tablete.db")}, 1,
			"vérifiez --db", filepath.Join(dir, "tablete.db")},
		{"sql on a missing file", "", []string{"device", "sql", "--db", filepath.Join(dir, "tablete.db"), "SELECT 1"}, 1,
			"aucun appareil", filepath.Join(dir, "tablete.db")},
		{"admin on a wrong directory", "", []string{"admin", "device", "list", "--data", filepath.Join(dir, "WRONG")}, 1,
			"aucune base Relais dans", filepath.Join(dir, "WRONG")},
		{"retention on a wrong directory", "", []string{"admin", "retention", "run", "--data", filepath.Join(dir, "WRONG")}, 1,
			"vérifiez --data", filepath.Join(dir, "WRONG")},
		{"server URL without scheme", pw, []string{"device", "login", "--db", tab, "--server", strings.TrimPrefix(srv.URL, "http://"), "--email", "camille@exemple.fr", "--password-stdin"}, 2,
			"doit commencer par http:// ou https://", tab},
		{"wrong password", "pas-le-bon-mot\n", []string{"device", "login", "--db", tab, "--server", srv.URL, "--email", "camille@exemple.fr", "--password-stdin"}, 1,
			"adresse e-mail ou mot de passe incorrect", tab},
		{"server down at login", pw, []string{"device", "login", "--db", tab, "--server", "http://" + freeAddr(t), "--email", "camille@exemple.fr", "--password-stdin"}, 1,
			"Serveur injoignable", tab},
	} {
		_, errs, code := cliFast(t, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d with %q", tc.name, code, errs, tc.code, tc.want)
		}
		frenchOnly(t, tc.name, errs)
		noFile(t, tc.name, tc.absent)
	}

	// Logged in: SQL with uuid(), several statements at once, errors.
	if _, errs, code := cli(t, pw, "device", "login", "--db", tab, "--server", srv.URL, "--email", "camille@exemple.fr", "--password-stdin"); code != 0 {
		t.Fatalf("login: %s", errs)
	}
	_, errs, code := cli(t, "", "device", "sql", "--db", tab,
		"INSERT INTO activite (id, type, duree, commune) VALUES (uuid(), 'individuel', 45, 'Laval'); INSERT INTO activite (id, type, duree, commune) VALUES (uuid(), 'collectif', 90, 'Mayenne')")
	if code != 0 || !strings.Contains(errs, "2 lignes modifiées.") {
		t.Fatalf("two inserts with uuid(): %d %s", code, errs)
	}
	out, _, _ := cli(t, "", "device", "sql", "--db", tab, "--csv", "SELECT id FROM activite ORDER BY id")
	ids := regexp.MustCompile(`(?m)^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).FindAllString(out, -1)
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("uuid() should give two distinct version 7 UUIDs: %q", out)
	}
	if _, errs, _ := cli(t, "", "device", "sql", "--db", tab, "UPDATE activite SET duree = 50 WHERE commune = 'Laval'"); !strings.Contains(errs, "1 ligne modifiée.") {
		t.Errorf("update: %s", errs)
	}
	for _, tc := range []check{
		{"all or nothing", "", []string{"device", "sql", "--db", tab, "INSERT INTO activite (id, type) VALUES (uuid(), 'individuel'); INSERT INTO activite (id, type) VALUES ('" + ids[0] + "', 'individuel')"}, 1,
			"existe déjà : rien n'a été écrit", ""},
		{"missing id", "", []string{"device", "sql", "--db", tab, "INSERT INTO activite (type) VALUES ('individuel')"}, 1,
			"a besoin d'un identifiant", ""},
		{"incomplete", "", []string{"device", "sql", "--db", tab, "SELECT (1"}, 1, "instruction SQL incomplète", ""},
		{"syntax", "", []string{"device", "sql", "--db", tab, "SELEC 1"}, 1, "erreur de syntaxe SQL près de « SELEC »", ""},
		{"unknown table", "", []string{"device", "sql", "--db", tab, "SELECT * FROM activites"}, 1, "pas de table activites", ""},
		{"sql -h", "", []string{"device", "sql", "-h"}, 0, "", ""},
	} {
		_, errs, code := cli(t, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d with %q", tc.name, code, errs, tc.code, tc.want)
		}
		frenchOnly(t, tc.name, errs)
	}
	out, _, _ = cli(t, "", "device", "sql", "--db", tab, "--csv", "SELECT COUNT(*) AS n FROM activite")
	if out != "n\n2\n" {
		t.Errorf("after the failed two-statement insert the device holds %q activities, want 2 (nothing of it written)", out)
	}
	if out, _, _ := cli(t, "", "device", "sql", "-h"); !strings.Contains(out, "SQL") {
		t.Errorf("device sql -h does not say it takes SQL: %s", out)
	}

	// The server goes away: the sync says so, with the count of what
	// waits on the device, and status does not claim a connection.
	rdb, err := sql.Open("sqlite3", tab)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Exec("UPDATE _device SET server = ?", "http://"+freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	_, errs, code = cliFast(t, "", "device", "sync", "--db", tab)
	if code != 1 || !regexp.MustCompile(`Serveur injoignable : vos \d+ saisies restent sur l'appareil, elles partiront à la prochaine connexion`).MatchString(errs) {
		t.Errorf("sync with the server down: %d %q", code, errs)
	}
	frenchOnly(t, "sync with the server down", errs)
	if st, _, _ := cli(t, "", "device", "status", "--db", tab); strings.Contains(st, "Connecté") || !strings.Contains(st, "Inscrit auprès du serveur") ||
		!regexp.MustCompile(`(?i)Dernière erreur\s+serveur injoignable`).MatchString(st) {
		t.Errorf("status: %s", st)
	}

	// Too many failed logins: the wait is given.
	other := filepath.Join(dir, "autre.db")
	var last string
	for range 4 {
		_, last, _ = cli(t, "faux-mot-de-passe\n", "device", "login", "--db", other, "--server", srv.URL, "--email", "camille@exemple.fr", "--password-stdin")
	}
	if !regexp.MustCompile(`trop d'essais de connexion manqués : réessayez dans \d+`).MatchString(last) {
		t.Errorf("rate limited: %q", last)
	}
	frenchOnly(t, "rate limited", last)
	noFile(t, "failed logins", other)
}

// A revoked device says so once, in French.
func TestRevokedSaidOnce(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := relaistest.StartServer(t, server.Config{DataDir: data})
	srv.AddUser(t, "camille@exemple.fr", "conseiller", "un-mot-de-passe-solide")
	tab := filepath.Join(dir, "t.db")
	if _, errs, code := cli(t, "un-mot-de-passe-solide\n", "device", "login", "--db", tab, "--server", srv.URL, "--email", "camille@exemple.fr", "--password-stdin"); code != 0 {
		t.Fatal(errs)
	}
	st, _, _ := cli(t, "", "device", "status", "--db", tab)
	id := regexp.MustCompile(`Appareil\s+(\S+)`).FindStringSubmatch(st)[1]
	if _, errs, code := cli(t, "", "admin", "device", "revoke", "--data", data, id); code != 0 {
		t.Fatal(errs)
	}
	_, errs, code := cli(t, "", "device", "sync", "--db", tab)
	if code != 1 || strings.Count(errs, "révoqué") != 1 {
		t.Errorf("revoked: exit %d, %q (want one mention)", code, errs)
	}
	frenchOnly(t, "revoked", errs)
}
