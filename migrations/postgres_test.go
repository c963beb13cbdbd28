package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPostgresTwins: every set that has PostgreSQL migrations has one for
// each SQLite migration, with the same version, and once applied both
// engines hold the same tables with the same columns, nullable alike, and
// the same labels. A migration added on one side only fails here.
func TestPostgresTwins(t *testing.T) {
	ctx := context.Background()
	for _, set := range []migrations.Set{migrations.Domain, migrations.Server, migrations.Replica} {
		t.Run(string(set), func(t *testing.T) {
			lite, _ := migrations.FS(set)
			pg, err := migrations.PostgresFS(set)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := names(t, lite), names(t, pg); !slices.Equal(a, b) {
				t.Fatalf("SQLite migrations %v, PostgreSQL twins %v", a, b)
			}

			sdb, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer sdb.Close()
			if err := migrations.Up(ctx, sdb.W, set); err != nil {
				t.Fatal(err)
			}
			pdb, err := pgstore.Open(ctx, pgtest.DB(t), pgstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer pdb.Close()
			// Twice: the second run finds nothing to do.
			for range 2 {
				if err := migrations.UpPostgres(ctx, pdb.W, set); err != nil {
					t.Fatal(err)
				}
			}
			// _cells, the per-cell layout, is SQLite's alone: the merge came
			// to PostgreSQL with version records (replica.Init converts
			// and drops it on SQLite).
			liteCols := columns(t, sdb.R, `SELECT m.name, p.name, p."notnull" OR p.pk > 0 FROM sqlite_master m, pragma_table_info(m.name) p
				WHERE m.type = 'table' AND m.name NOT LIKE '\_migrations%' ESCAPE '\' AND m.name NOT LIKE 'sqlite%' AND m.name != '_cells'`)
			pgCols := columns(t, pdb.R, `SELECT table_name, column_name, is_nullable = 'NO' FROM information_schema.columns
				WHERE table_schema = 'public' AND table_name NOT LIKE '\_migrations%'`)
			if !slices.Equal(liteCols, pgCols) {
				t.Errorf("tables differ:\nSQLite     %v\nPostgreSQL %v", liteCols, pgCols)
			}
			if set == migrations.Domain {
				// The labels are data, written by the migrations themselves.
				q := "SELECT enum || '/' || value || '/' || label || '/' || position, '', false FROM _labels"
				if a, b := columns(t, sdb.R, q), columns(t, pdb.R, q); !slices.Equal(a, b) || len(a) == 0 {
					t.Errorf("labels differ: SQLite %d rows, PostgreSQL %d", len(a), len(b))
				}
			}
			lv, _ := migrations.Version(ctx, sdb.R, set)
			pv, err := migrations.Version(ctx, pdb.R, set)
			if err != nil || lv != pv || pv == 0 {
				t.Errorf("versions: SQLite %d, PostgreSQL %d (%v)", lv, pv, err)
			}
		})
	}
}

func names(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	m, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func columns(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var tbl, col string
		var notNull bool
		if err := rows.Scan(&tbl, &col, &notNull); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s.%s notnull=%v", tbl, col, notNull))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
