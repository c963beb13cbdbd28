package domain_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/server"
)

// TestSchemaEvolution: the server runs a newer schema (one more column,
// one more table); an old device keeps syncing, keeps the cells it does
// not understand aside instead of dropping them, and shows them once
// the app's update migrates its replica. Its own edits to the same rows
// meanwhile are not lost either.
func TestSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	newer := relaistest.NewerDomain(t, "testdata/newer")
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	relaistest.MigrateFile(t, server.DBPath(dir), newer, migrations.Replica, migrations.Domain)
	srv := relaistest.StartServer(t, server.Config{DataDir: dir})
	if _, ok := srv.Schema().ColumnType("activite", "canal"); !ok {
		t.Fatal("the server does not run the newer schema")
	}
	u := srv.AddUser(t, "ancien@exemple.fr", "admin", "motdepasse1")
	fresh := newRawDevice(t, srv, "ancien@exemple.fr", "motdepasse1")

	oldPath := filepath.Join(t.TempDir(), "ancienne-tablette.db")
	old, err := device.Open(ctx, oldPath, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := old.Schema().ColumnType("activite", "canal"); ok {
		t.Fatal("the old device already knows the new column")
	}
	if err := old.Login(ctx, srv.URL, "ancien@exemple.fr", "motdepasse1"); err != nil {
		t.Fatal(err)
	}

	// A newer device records an activity using the new column and table.
	act, sup := newID(), newID()
	row := base("activite", u.ID)
	row["canal"] = "visio"
	if perr := fresh.push("activite", act, row); perr != nil {
		t.Fatal(perr)
	}
	if perr := fresh.push("support_atelier", sup, map[string]any{"mediateur_id": u.ID, "activite_id": act, "titre": "Fiche « Mon espace santé »"}); perr != nil {
		t.Fatal(perr)
	}

	// The old device syncs: it gets the activity, keeps the rest aside,
	// and can still edit the row.
	mustSync(t, old)
	var commune string
	if err := old.DB().QueryRowContext(ctx, "SELECT commune FROM activite WHERE id = ?", act).Scan(&commune); err != nil || commune != "Laval" {
		t.Fatalf("old device: activity %q, %v", commune, err)
	}
	aside := relaistest.CountCells(t, old.DB(), func(c relaistest.Cell) bool {
		return (c.Table == "activite" && c.Column == "canal") || c.Table == "support_atelier"
	})
	if aside != 4 {
		t.Fatalf("old device kept %d cells aside, want 4", aside)
	}
	exec(t, old.DB(), "UPDATE activite SET duree = 60, notes = 'Suite en visio' WHERE id = ?", act)
	mustSync(t, old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	// The app is updated: its replica migrates, and what was kept aside
	// appears, next to the device's own edit.
	relaistest.MigrateFile(t, oldPath, newer, migrations.Replica, migrations.Domain, migrations.Device)
	upd, err := device.Open(ctx, oldPath, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	var canal, notes, titre string
	var duree int
	if err := upd.DB().QueryRowContext(ctx, "SELECT canal, duree, notes FROM activite WHERE id = ?", act).Scan(&canal, &duree, &notes); err != nil {
		t.Fatal(err)
	}
	if canal != "visio" || duree != 60 || notes != "Suite en visio" {
		t.Fatalf("after the update: canal %q duree %d notes %q", canal, duree, notes)
	}
	if err := upd.DB().QueryRowContext(ctx, "SELECT titre FROM support_atelier WHERE id = ?", sup).Scan(&titre); err != nil || titre != "Fiche « Mon espace santé »" {
		t.Fatalf("new table after the update: %q, %v", titre, err)
	}
	// And its writes to the new column now sync like any other.
	exec(t, upd.DB(), "UPDATE activite SET canal = 'telephone' WHERE id = ?", act)
	mustSync(t, upd)
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT canal, duree FROM activite WHERE id = ?", act).Scan(&canal, &duree); err != nil || canal != "telephone" || duree != 60 {
		t.Fatalf("server after the updated device synced: canal %q duree %d %v", canal, duree, err)
	}
}
