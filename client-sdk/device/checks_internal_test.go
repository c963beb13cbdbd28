package device

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A replica written by an older version carries a trigger per kind of
// check (types, rules, owner) on each table; opened by this one, it
// carries exactly this version's triggers, and its checks refuse what
// the old ones refused, with the same messages.
func TestOldReplicaGetsTheChecksOfThisVersion(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile(filepath.Join("..", "..", "internal", "upgrade", "testdata", "device", "tablette-claire.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tablette-claire.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	// What the old version installed: the rules and the owner's checks
	// in triggers of their own.
	if n := triggerNames(t, path, "_check_rule_activite_insert", "_check_owner_activite_insert"); len(n) != 2 {
		t.Fatalf("the old replica has triggers %v; the test needs one whose checks are split", n)
	}
	r, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, err := captureColumns(ctx, r.DB(), r.Schema())
	if err != nil {
		t.Fatal(err)
	}
	want := replicaTriggers(r.Schema(), cols)
	rows, err := r.DB().QueryContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND (name LIKE '\\_capture\\_%' ESCAPE '\\' OR name LIKE '\\_check\\_%' ESCAPE '\\')")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after the upgrade the replica has %d triggers, this version wants %d (or they differ)", len(got), len(want))
	}
	// Her account, so that the owner's check runs; a row naming someone
	// else breaks a rule too: the owner's message comes first, as when
	// the owner's trigger fired before the rules'.
	run(t, r, "UPDATE _device SET user_id = 'moi', role = 'conseiller' WHERE id = 1")
	for _, tc := range []struct{ stmt, want string }{
		{"INSERT INTO activite (id, mediateur_id, duree) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', 'une-autre', 0)", "relais: cette fiche doit être à votre nom"},
		{"INSERT INTO activite (id, duree, type) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', 'trente', 'individuel')", "relais: rule duree_activite:"},
		{"INSERT INTO activite (id, thematiques) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', '[\"email\",\"email\"]')", "relais: rule enum_activite_thematiques:"},
		{"INSERT INTO activite (id, thematiques) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', '[\"logement\"]')", "relais: rule thematiques_administratives:"},
		{"INSERT INTO activite (id, notes) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', x'01')", "relais: activite.notes must be text"},
	} {
		_, err := r.DB().ExecContext(ctx, tc.stmt)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.stmt, err, tc.want)
		}
	}
	run(t, r, "INSERT INTO activite (id, thematiques) VALUES ('0192f1a0-0000-7000-8000-0000000000c1', '[\"aide_aux_demarches_administratives\",\"logement\"]')")
	var owner string
	if err := r.DB().QueryRow("SELECT mediateur_id FROM activite WHERE id = '0192f1a0-0000-7000-8000-0000000000c1'").Scan(&owner); err != nil || owner != "moi" {
		t.Fatalf("owner %q (%v), want the device's account filled in", owner, err)
	}
}

// triggerNames returns those of names that the database at path has.
func triggerNames(t *testing.T, path string, names ...string) []string {
	t.Helper()
	r, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for _, n := range names {
		var found string
		if err := r.QueryRow("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name = ?", n).Scan(&found); err == nil {
			out = append(out, found)
		}
	}
	return out
}
