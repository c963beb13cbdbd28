// Package migrations holds Relais's SQL schema as embedded migrations and
// applies them with goose.
//
// The schema is cut in four sets, each with its own version table so they
// evolve independently:
//   - domain: the synced tables (same on devices and server);
//   - replica: the merge engine's bookkeeping (cell versions, conflicts),
//     also on both sides;
//   - server: accounts, devices, batches;
//   - device: the outbox and the device's sync state.
//
// Synced tables declare every column but "id" nullable and carry no foreign
// keys: cells of one row arrive independently, in any order, across pages,
// and a replica must be able to hold a partial row without failing.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

//go:embed domain/*.sql replica/*.sql server/*.sql device/*.sql
var files embed.FS

// Set names one of the migration sets.
type Set string

const (
	Domain  Set = "domain"
	Replica Set = "replica"
	Server  Set = "server"
	Device  Set = "device"
)

// FS returns the migrations of one set, for tests and tools.
func FS(set Set) (fs.FS, error) { return fs.Sub(files, string(set)) }

// Up applies every pending migration of the given sets, in order.
func Up(ctx context.Context, db *sql.DB, sets ...Set) error {
	for _, set := range sets {
		if err := UpFS(ctx, db, set, nil); err != nil {
			return err
		}
	}
	return nil
}

// UpFS applies a set's migrations from fsys (the embedded ones when nil).
// Tests of schema evolution pass a newer set than the one embedded.
func UpFS(ctx context.Context, db *sql.DB, set Set, fsys fs.FS) error {
	if fsys == nil {
		var err error
		if fsys, err = FS(set); err != nil {
			return fmt.Errorf("migrations %s: %w", set, err)
		}
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithTableName("_migrations_"+string(set)),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations %s: %w", set, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations %s: %w", set, err)
	}
	return nil
}

// Version returns the highest applied migration of a set (0 if none),
// read through db: a database, or a transaction on it.
func Version(ctx context.Context, db interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, set Set) (int64, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx,
		"SELECT MAX(version_id) FROM _migrations_"+string(set)+" WHERE is_applied").Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("migration version of %s: %w", set, err)
	}
	return v.Int64, nil
}

// Latest returns the highest migration version embedded for a set: what
// Version returns once the set is fully applied.
func Latest(set Set) (int64, error) {
	fsys, err := FS(set)
	if err != nil {
		return 0, fmt.Errorf("migrations %s: %w", set, err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("migrations %s: %w", set, err)
	}
	var latest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migrations %s: file %s: %w", set, e.Name(), err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}
