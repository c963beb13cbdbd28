package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// cli runs one relais command in-process with stdin and returns its
// output and exit code.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = run(context.Background(), args, e)
	return out.String(), errb.String(), code
}

// TestAdminAccessCommands drives the who-sees-what commands against a
// data directory while the real server serves it, as an administrator
// would: accounts, a coordination, a device listed then revoked (and the
// device told so at its next sync), an account disabled, keys rotated.
func TestAdminAccessCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := relaistest.StartServer(t, server.Config{DataDir: data})
	const pw = "un-mot-de-passe-solide\n"
	for _, u := range [][2]string{{"coord@exemple.fr", "coordinateur"}, {"camille@exemple.fr", "conseiller"}} {
		if _, errs, code := cli(t, pw, "admin", "user", "add", "--data", data, "--email", u[0], "--role", u[1], "--name", "Nom de "+u[1], "--password-stdin"); code != 0 {
			t.Fatalf("user add %s: %s", u[0], errs)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"coordination with dates", []string{"--coordinateur", "coord@exemple.fr", "--mediateur", "camille@exemple.fr", "--from", "2026-01-01", "--to", "2026-12-31"}, 0, "suit désormais"},
		{"open coordination", []string{"--coordinateur", "coord@exemple.fr", "--mediateur", "camille@exemple.fr"}, 0, "sans limite de dates"},
		{"not a date", []string{"--coordinateur", "coord@exemple.fr", "--mediateur", "camille@exemple.fr", "--from", "01/02/2026"}, 2, ""},
		{"end before start", []string{"--coordinateur", "coord@exemple.fr", "--mediateur", "camille@exemple.fr", "--from", "2026-05-01", "--to", "2026-04-01"}, 2, ""},
		{"a conseiller cannot coordinate", []string{"--coordinateur", "camille@exemple.fr", "--mediateur", "coord@exemple.fr"}, 1, ""},
		{"unknown account", []string{"--coordinateur", "coord@exemple.fr", "--mediateur", "nobody@exemple.fr"}, 1, ""},
	} {
		out, errs, code := cli(t, "", append([]string{"admin", "coordination", "add", "--data", data}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("coordination add, %s: exit %d, out %q, err %q", tc.name, code, out, errs)
		}
	}
	var n int
	if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM coordination WHERE fin = '2026-12-31'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the dated coordination is not stored as a synced row: %d %v", n, err)
	}

	users, _, code := cli(t, "", "admin", "user", "list", "--data", data)
	if code != 0 || !regexp.MustCompile(`camille@exemple\.fr\s+Nom de conseiller\s+conseiller`).MatchString(users) || !strings.Contains(users, "coord@exemple.fr") {
		t.Errorf("user list:\n%s", users)
	}
	coords, _, code := cli(t, "", "admin", "coordination", "list", "--data", data)
	open := regexp.MustCompile(`coord@exemple\.fr\s+camille@exemple\.fr\s+sans limite de dates\s+(\S+)`).FindStringSubmatch(coords)
	if code != 0 || open == nil || !strings.Contains(coords, "du 2026-01-01 au 2026-12-31") {
		t.Fatalf("coordination list:\n%s", coords)
	}
	if out, errs, code := cli(t, "", "admin", "coordination", "remove", "--data", data, open[1]); code != 0 || !strings.Contains(out, "supprimée") {
		t.Fatalf("coordination remove: %d %s %s", code, out, errs)
	}
	if coords, _, _ := cli(t, "", "admin", "coordination", "list", "--data", data); strings.Contains(coords, open[1]) {
		t.Errorf("the removed coordination is still listed:\n%s", coords)
	}
	if _, errs, code := cli(t, "", "admin", "coordination", "remove", "--data", data, open[1]); code != 1 || !strings.Contains(errs, "aucune coordination") {
		t.Errorf("removing it twice: %d %s", code, errs)
	}
	if out, errs, code := cli(t, "nouveau-mot-de-passe\n", "admin", "user", "password", "--data", data, "--email", "camille@exemple.fr", "--password-stdin"); code != 0 || !strings.Contains(out, "changé") {
		t.Fatalf("password reset: %d %s %s", code, out, errs)
	}
	if st, raw := srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": "camille@exemple.fr", "password": strings.TrimSpace(pw), "device_id": "0192f1a0-0000-7000-8000-00000000000b"}); st != 401 {
		t.Errorf("the old password still logs in: %d %s", st, raw)
	}
	const newPw = "nouveau-mot-de-passe\n"
	db := filepath.Join(dir, "tablette.db")
	if _, errs, code := cli(t, newPw, "device", "login", "--db", db, "--server", srv.URL, "--email", "camille@exemple.fr", "--name", "Tablette bleue", "--password-stdin"); code != 0 {
		t.Fatalf("device login: %s", errs)
	}
	status, _, _ := cli(t, "", "device", "status", "--db", db)
	id := regexp.MustCompile(`Appareil\s+(\S+)`).FindStringSubmatch(status)
	if id == nil {
		t.Fatalf("no device id in status: %s", status)
	}
	list, _, code := cli(t, "", "admin", "device", "list", "--data", data, "--email", "camille@exemple.fr")
	if code != 0 || !strings.Contains(list, id[1]) || !strings.Contains(list, "actif") || !strings.Contains(list, "Tablette bleue") {
		t.Fatalf("device list: %s", list)
	}
	if _, errs, code := cli(t, "", "admin", "device", "revoke", "--data", data, "--id", id[1]); code != 0 {
		t.Fatalf("device revoke: %s", errs)
	}
	if _, _, code := cli(t, "", "admin", "device", "revoke", "--data", data, "--id", "0192f1a0-0000-7000-8000-000000000009"); code != 1 {
		t.Errorf("revoking an unknown device exited %d", code)
	}
	if list, _, _ := cli(t, "", "admin", "device", "list", "--data", data); !strings.Contains(list, "révoqué le") {
		t.Errorf("device list after revocation: %s", list)
	}
	if _, errs, code := cli(t, "", "device", "sync", "--db", db); code != 1 || !strings.Contains(errs, "révoqué") {
		t.Errorf("sync of the revoked device: exit %d, %s", code, errs)
	}
	if status, _, _ := cli(t, "", "device", "status", "--db", db); !strings.Contains(status, "RÉVOQUÉ") {
		t.Errorf("status after revocation: %s", status)
	}

	if _, errs, code := cli(t, "", "admin", "user", "disable", "--data", data, "--email", "coord@exemple.fr"); code != 0 {
		t.Fatalf("user disable: %s", errs)
	}
	st, raw := srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": "coord@exemple.fr", "password": strings.TrimSpace(pw), "device_id": "0192f1a0-0000-7000-8000-00000000000a"})
	if st != 403 || relaistest.ErrorCode(raw) != "user_disabled" {
		t.Errorf("login of a disabled account: %d %s", st, raw)
	}
	if _, errs, code := cli(t, "", "admin", "user", "enable", "--data", data, "--email", "coord@exemple.fr"); code != 0 {
		t.Fatalf("user enable: %s", errs)
	}

	if _, errs, code := cli(t, "", "admin", "keys", "rotate", "--data", data); code != 0 {
		t.Fatalf("keys rotate: %s", errs)
	}
	var live, retired int
	if err := srv.DB().R.QueryRow("SELECT COUNT(*) FILTER (WHERE retired_at IS NULL), COUNT(*) FILTER (WHERE retired_at IS NOT NULL) FROM _signing_keys").
		Scan(&live, &retired); err != nil || live != 1 || retired != 1 {
		t.Fatalf("after rotation: %d live, %d retired keys (%v)", live, retired, err)
	}
}
