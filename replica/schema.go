package replica

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// Queryer is what reading the schema needs; *sql.DB and *sql.Tx have it.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// LoadSchema reads the synced tables from the database: every table whose
// name starts with neither "_" (bookkeeping) nor "sqlite_", with a text
// primary key "id". Other columns must be TEXT, INTEGER or REAL.
func LoadSchema(ctx context.Context, db Queryer) (*syncproto.Schema, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE '\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load schema: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	s := &syncproto.Schema{Tables: map[string]*syncproto.Table{}}
	for _, name := range names {
		t, err := loadTable(ctx, db, name)
		if err != nil {
			return nil, err
		}
		s.Tables[name] = t
	}
	return s, nil
}

func loadTable(ctx context.Context, db Queryer, name string) (*syncproto.Table, error) {
	rows, err := db.QueryContext(ctx, "SELECT name, type, pk FROM pragma_table_info(?)", name)
	if err != nil {
		return nil, fmt.Errorf("load schema of %s: %w", name, err)
	}
	defer rows.Close()
	t := &syncproto.Table{Name: name, Columns: map[string]syncproto.ColumnType{}}
	hasID := false
	for rows.Next() {
		var col, typ string
		var pk int
		if err := rows.Scan(&col, &typ, &pk); err != nil {
			return nil, fmt.Errorf("load schema of %s: %w", name, err)
		}
		if col == "id" {
			if pk != 1 || !strings.EqualFold(typ, "TEXT") {
				return nil, fmt.Errorf("synced table %s: id must be the TEXT primary key", name)
			}
			hasID = true
			continue
		}
		if strings.HasPrefix(col, "_") {
			return nil, fmt.Errorf("synced table %s: column %s: names starting with _ are reserved", name, col)
		}
		ct, ok := syncproto.ParseColumnType(typ)
		if !ok {
			return nil, fmt.Errorf("synced table %s: column %s has type %q; use TEXT, INTEGER or REAL", name, col, typ)
		}
		t.Columns[col] = ct
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load schema of %s: %w", name, err)
	}
	if !hasID {
		return nil, fmt.Errorf("synced table %s has no id column", name)
	}
	return t, nil
}

// quote makes an identifier safe to splice into SQL. Identifiers only ever
// come from the schema read above, never from a request, but quoting keeps
// a column named like a keyword ("type", "date") working.
func quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}
