package reliability

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// TestErasedValuesLeaveTheServerFiles: after a beneficiary is erased on
// the server (and a device has synced the erasure), no byte of its name
// or phone number remains in the database file or its write-ahead log,
// while the server keeps running (issue 11, failure 10: they stayed in
// relais.db-wal until a clean shutdown).
func TestErasedValuesLeaveTheServerFiles(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
	a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
	id := uuid.Must(uuid.NewV7()).String()
	secrets := [][]byte{[]byte("Zephyrine"), []byte("Quasimodo-Brun"), []byte("0611223344")}
	if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom, telephone) VALUES (?, ?, ?, ?)",
		id, string(secrets[0]), string(secrets[1]), string(secrets[2])); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	files := []string{server.DBPath(srv.DataDir), server.DBPath(srv.DataDir) + "-wal"}
	found := func() []string {
		var where []string
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(raw, s) {
					where = append(where, filepath.Base(f)+": "+string(s))
				}
			}
		}
		return where
	}
	if len(found()) == 0 {
		t.Fatal("the values are in neither file before the erasure: the test would prove nothing")
	}
	if err := srv.EraseBeneficiaire(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if where := found(); len(where) > 0 {
		t.Fatalf("erased values still readable in the server's files: %v", where)
	}
}

// TestErasedValuesLeaveEveryTableOnPostgres: on PostgreSQL, after a
// beneficiary is erased on one server while a device syncs through the
// other, no row of any table of the database holds its name or phone
// number any more (the conflict log and the values kept beside a row's
// versions included). What PostgreSQL's files keep of old row versions
// until VACUUM reclaims them is PostgreSQL's to clear (README, "Running
// it for real").
func TestErasedValuesLeaveEveryTableOnPostgres(t *testing.T) {
	ctx := context.Background()
	e := relaistest.Engines()[1]
	one := e.Start(t, server.Config{})
	two := e.Start(t, server.Config{Store: one.Store})
	one.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
	a := one.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
	b := two.LoggedInDevice(t, "b", "a@relais.test", "mot-de-passe-a")
	id := uuid.Must(uuid.NewV7()).String()
	secrets := []string{"Zephyrine", "Quasimodo-Brun", "0611223344"}
	if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom, telephone) VALUES (?, ?, ?, ?)",
		id, secrets[0], secrets[1], secrets[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A concurrent edit from the other tablet, so that the conflict log
	// holds a personal value too.
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		dev *device.Replica
		v   string
	}{{a, "Zephyrine-Anne"}, {b, "Zephyrine-Marie"}} {
		if _, err := r.dev.DB().ExecContext(ctx, "UPDATE beneficiaire SET prenom = ? WHERE id = ?", r.v, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*device.Replica{a, b} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	db := two.DB().R
	tables := relaistest.Strings(t, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
	found := func() []string {
		var where []string
		for _, table := range tables {
			for _, s := range secrets {
				var n int
				// A row's text form holds every column, bytea in hex
				// and JSON as written.
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`" x WHERE strpos(x::text, $1) > 0`, s).Scan(&n); err != nil {
					t.Fatalf("%s: %v", table, err)
				}
				if n > 0 {
					where = append(where, fmt.Sprintf("%s: %s (%d rows)", table, s, n))
				}
			}
		}
		return where
	}
	before := found()
	if len(before) == 0 {
		t.Fatal("the values are in no table before the erasure: the test would prove nothing")
	}
	if err := one.EraseBeneficiaire(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if where := found(); len(where) > 0 {
		t.Fatalf("erased values still in the database's tables: %v (before the erasure: %v)", where, before)
	}
	for name, r := range map[string]*device.Replica{"a": a, "b": b} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		var prenom sql.NullString
		if err := r.DB().QueryRowContext(ctx, "SELECT prenom FROM beneficiaire WHERE id = ?", id).Scan(&prenom); err != nil || prenom.Valid {
			t.Errorf("device %s after the erasure: prenom %v (%v)", name, prenom, err)
		}
	}
}
