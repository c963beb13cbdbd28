package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

func runIn(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runInWith(t, "", args...)
}

// runInWith is runIn with stdin.
func runInWith(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := run(context.Background(), args, e)
	return out.String(), errb.String(), code
}

// TestDemoThenRetentionThenADevice: `relais demo` fills a data directory
// and prints the demo accounts; `admin retention run` anonymises the
// beneficiaries not seen for a year; `admin beneficiaire erase` erases
// one; a demo conseillère logs in with the printed password and syncs.
func TestDemoThenRetentionThenADevice(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	out, errs, code := runIn(t, "demo", "--data", data, "--seed", "5", "--size", "600")
	if code != 0 {
		t.Fatalf("relais demo: %d %s", code, errs)
	}
	for _, want := range []string{"Département 53 (Mayenne)", "22 conseillers", demo.DefaultPassword, "camille.durand@demo.relais.fr", "coordinateur", "admin@demo.relais.fr"} {
		if !strings.Contains(out, want) {
			t.Errorf("relais demo output lacks %q:\n%s", want, out)
		}
	}
	if _, errs, code := runIn(t, "demo", "--data", data, "--seed", "5", "--size", "600"); code != 1 || !strings.Contains(errs, "déjà") {
		t.Errorf("second run into the same directory: %d %s", code, errs)
	}
	if _, errs, code := runIn(t, "demo", "--data", data, "--departement", "29"); code != 1 || !strings.Contains(errs, "53") {
		t.Errorf("another département: %d %s", code, errs)
	}

	if !regexp.MustCompile(`\d+ appareils, \d+ conflits à examiner`).MatchString(out) || !strings.Contains(out, "sur le disque") {
		t.Errorf("relais demo does not report its fleet, conflicts and size:\n%s", out)
	}
	// relais demo ran the retention job itself: neither a run now nor
	// the server's run at start-up anonymises any of the demo's data.
	out, errs, code = runIn(t, "admin", "retention", "run", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "0 bénéficiaire") {
		t.Fatalf("retention after the demo: %d %q %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(data, "relais.db-wal")); err == nil {
		if fi, _ := os.Stat(filepath.Join(data, "relais.db-wal")); fi.Size() > 1<<20 {
			t.Errorf("the demo left a %d-byte write-ahead log", fi.Size())
		}
	}

	srv := relaistest.StartServer(t, server.Config{DataDir: data})
	if n, err := srv.RunRetention(ctx, server.DefaultRetention); err != nil || n != 0 {
		t.Fatalf("the server's retention job at start-up anonymised %d demo beneficiaries (%v)", n, err)
	}
	// The coordinator's Flotte and Conflits show the demo's devices and
	// conflicts.
	coord := srv.LoginHTTP(t, "sophie.chevalier@demo.relais.fr", demo.DefaultPassword, "0192a000-0000-7000-8000-0000000c0040")
	for _, tc := range []struct{ path, key string }{{"/v1/dashboard/devices", "devices"}, {"/v1/dashboard/conflicts", "conflicts"}} {
		st, raw := getJSON(t, srv.URL+tc.path, coord.AccessToken)
		var body map[string][]map[string]any
		if err := json.Unmarshal(raw, &body); st != 200 || err != nil || len(body[tc.key]) == 0 {
			t.Fatalf("%s after the demo: %d %s (%v)", tc.path, st, raw, err)
		}
	}
	var ben string
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT id FROM beneficiaire WHERE anonyme = 0 AND nom IS NOT NULL LIMIT 1").Scan(&ben); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runIn(t, "admin", "beneficiaire", "erase", "--data", data, "--id", ben); code != 0 {
		t.Fatalf("erase: %d %s", code, errs)
	}
	if _, errs, code := runIn(t, "admin", "beneficiaire", "erase", "--data", data, "--id", "0192a000-0000-7000-8000-00000000dead"); code != 1 || !strings.Contains(errs, "aucun bénéficiaire") {
		t.Fatalf("erasing an unknown beneficiary: %d %s", code, errs)
	}

	dev := srv.LoggedInDevice(t, "camille", "camille.durand@demo.relais.fr", demo.DefaultPassword)
	if _, err := dev.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var mine int
	var u string
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT id FROM _users WHERE email = 'camille.durand@demo.relais.fr'").Scan(&u); err != nil {
		t.Fatal(err)
	}
	if err := dev.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM activite WHERE mediateur_id = ?", u).Scan(&mine); err != nil || mine == 0 {
		t.Fatalf("the demo conseillère's tablet has %d of her activities (%v)", mine, err)
	}
	var anon int
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT anonyme FROM beneficiaire WHERE id = ?", ben).Scan(&anon); err != nil || anon != 1 {
		t.Fatalf("erased beneficiary: anonyme %d, %v", anon, err)
	}

	// The conseillère erases one of hers from the tablet, with the CLI.
	hers := "0192a000-0000-7000-8000-00000000beef"
	if _, err := dev.DB().ExecContext(ctx, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, genre)
		VALUES (?, ?, 0, 'Paulette', 'Derouet', 'feminin')`, hers, u); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := runIn(t, "device", "erase", "--db", dev.Path(), "--id", hers); code != 0 || !strings.Contains(out, "anonymisé") {
		t.Fatalf("device erase: %d %s %s", code, out, errs)
	}
	if _, errs, code := runIn(t, "device", "sync", "--db", dev.Path()); code != 0 {
		t.Fatalf("device sync: %d %s", code, errs)
	}
	var nom any
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT anonyme, nom FROM beneficiaire WHERE id = ?", hers).Scan(&anon, &nom); err != nil || anon != 1 || nom != nil {
		t.Fatalf("erased from the tablet, on the server: anonyme %d nom %v (%v)", anon, nom, err)
	}
}

// getJSON makes an authenticated GET and returns the status and body.
func getJSON(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, raw
}

// TestDemoRefusesARealDataDirectory: `relais demo` does not add its
// accounts, with their published password, to a data directory that has
// accounts of its own, unless --force says so (issue 11).
func TestDemoRefusesARealDataDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if _, errs, code := runInWith(t, "un-mot-de-passe-solide\n", "admin", "user", "add", "--data", data, "--email", "vraie@exemple.fr", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("admin user add: %d %s", code, errs)
	}
	_, errs, code := runIn(t, "demo", "--data", data, "--size", "200")
	if code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("demo into a real data directory: %d %s, want a refusal naming --force", code, errs)
	}
	srv := relaistest.StartServer(t, server.Config{DataDir: data})
	if status, _ := srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": "admin@" + demo.DemoDomain, "password": demo.DefaultPassword, "device_id": "0192a000-0000-7000-8000-0000000c0041"}); status != 401 {
		t.Fatalf("a demo account works in the real directory after the refusal: %d", status)
	}
}
