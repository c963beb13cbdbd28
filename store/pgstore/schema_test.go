package pgstore_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

// TestLoadSchemaSameOnBothEngines: the synced tables read from
// PostgreSQL's twins of the domain migrations are the ones
// replica.LoadSchema reads from SQLite, column for column and type for
// type, so both engines check pushed changes alike.
func TestLoadSchemaSameOnBothEngines(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if err := migrations.Up(ctx, lite.W, migrations.Domain, migrations.Server); err != nil {
		t.Fatal(err)
	}
	want, err := replica.LoadSchema(ctx, lite.R)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := pgstore.Open(ctx, pgtest.DB(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := migrations.UpPostgres(ctx, pg.W, migrations.Domain, migrations.Server); err != nil {
		t.Fatal(err)
	}
	got, err := pgstore.LoadSchema(ctx, pg.R)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Tables) < 5 || !reflect.DeepEqual(got.Tables, want.Tables) {
		t.Fatalf("schemas differ:\nPostgreSQL %v\nSQLite     %v", got.Tables, want.Tables)
	}
	// A column of a type the merge cannot carry is refused by name.
	if _, err := pg.W.ExecContext(ctx, "ALTER TABLE activite ADD COLUMN quand TIMESTAMPTZ"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.LoadSchema(ctx, pg.R); err == nil {
		t.Fatal("a timestamptz column was accepted")
	}
}
