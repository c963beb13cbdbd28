package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// On a terminal, device sync draws a progress line on stderr and erases
// it; in a script (stderr not a terminal) it writes nothing there.
func TestSyncProgressOnlyOnATerminal(t *testing.T) {
	dir := t.TempDir()
	srv := relaistest.StartServer(t, server.Config{DataDir: filepath.Join(dir, "data")})
	u := srv.AddUser(t, "camille@exemple.fr", "conseiller", "un-mot-de-passe-solide")
	tab := filepath.Join(dir, "t.db")
	if _, errs, code := cli(t, "un-mot-de-passe-solide\n", "device", "login", "--db", tab, "--server", srv.URL, "--email", "camille@exemple.fr", "--password-stdin"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := cli(t, "", "device", "sql", "--db", tab, "INSERT INTO activite (id, type, mediateur_id) VALUES (uuid(), 'individuel', '"+u.ID+"')"); code != 0 {
		t.Fatal(errs)
	}
	for _, terminal := range []bool{true, false} {
		var out, errb strings.Builder
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
			isTerminal: func() bool { return terminal }}
		if code := run(context.Background(), []string{"device", "sync", "--db", tab}, e); code != 0 {
			t.Fatalf("sync: %s", errb.String())
		}
		drawn := strings.Contains(errb.String(), "\r\033[KSynchronisation : ")
		if terminal && (!drawn || !strings.HasSuffix(errb.String(), "\r\033[K")) {
			t.Errorf("on a terminal: stderr %q, want a progress line then its erasure", errb.String())
		}
		if !terminal && errb.Len() != 0 {
			t.Errorf("in a script: stderr %q, want nothing", errb.String())
		}
		if !strings.Contains(out.String(), "Synchronisation terminée.") {
			t.Errorf("stdout: %q", out.String())
		}
	}
}
