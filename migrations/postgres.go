package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// The PostgreSQL twins of the sets, under postgres/<set>: the same
// version numbers as the SQLite files, each creating the same tables and
// columns in PostgreSQL's types (TestPostgresTwins keeps them in step).
//
//go:embed postgres/server/*.sql postgres/domain/*.sql postgres/compat/*.sql postgres/replica/*.sql
var pgFiles embed.FS

// Compat is a PostgreSQL-only set, applied first: SQLite's functions that
// the shared statements call (json_each, json_valid, json_type, unhex,
// two-argument MAX and MIN), written
// for PostgreSQL, so that one statement text runs on both engines.
const Compat Set = "compat"

// PostgresFS returns the PostgreSQL migrations of one set.
func PostgresFS(set Set) (fs.FS, error) { return fs.Sub(pgFiles, "postgres/"+string(set)) }

// UpPostgres applies every pending PostgreSQL migration of the given
// sets. Several servers may start at once on one database: an advisory
// lock held for each set's run makes the others wait, then find nothing
// left to apply.
func UpPostgres(ctx context.Context, db *sql.DB, sets ...Set) error {
	for _, set := range sets {
		fsys, err := PostgresFS(set)
		if err != nil {
			return fmt.Errorf("migrations %s: %w", set, err)
		}
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrations %s: %w", set, err)
		}
		p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
			goose.WithTableName("_migrations_"+string(set)),
			goose.WithDisableGlobalRegistry(true),
			goose.WithSessionLocker(locker))
		if err != nil {
			return fmt.Errorf("migrations %s: %w", set, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("migrations %s: %w", set, err)
		}
	}
	return nil
}
