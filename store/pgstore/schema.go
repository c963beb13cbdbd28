package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// LoadSchema reads the synced tables of a PostgreSQL database: what
// replica.LoadSchema reads from SQLite's catalogue, read here from
// information_schema, with the same rules (tables whose name starts with
// "_" are not synced; id is the TEXT primary key; other columns are TEXT,
// INTEGER or REAL, which PostgreSQL spells text, bigint and double
// precision in the twins of the domain migrations).
func LoadSchema(ctx context.Context, db *sql.DB) (*syncproto.Schema, error) {
	rows, err := db.QueryContext(ctx, `SELECT c.table_name, c.column_name, c.data_type,
			EXISTS (SELECT 1 FROM information_schema.table_constraints tc
				JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name
					AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
				WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
					AND tc.table_name = c.table_name AND k.column_name = c.column_name)
		FROM information_schema.columns c JOIN information_schema.tables t
			ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE '\_%'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	defer rows.Close()
	s := &syncproto.Schema{Tables: map[string]*syncproto.Table{}}
	hasID := map[string]bool{}
	for rows.Next() {
		var table, col, typ string
		var pk bool
		if err := rows.Scan(&table, &col, &typ, &pk); err != nil {
			return nil, fmt.Errorf("load schema: %w", err)
		}
		t := s.Tables[table]
		if t == nil {
			t = &syncproto.Table{Name: table, Columns: map[string]syncproto.ColumnType{}}
			s.Tables[table] = t
		}
		if col == "id" {
			if !pk || typ != "text" {
				return nil, fmt.Errorf("synced table %s: id must be the text primary key", table)
			}
			hasID[table] = true
			continue
		}
		if strings.HasPrefix(col, "_") {
			return nil, fmt.Errorf("synced table %s: column %s: names starting with _ are reserved", table, col)
		}
		ct, ok := columnType(typ)
		if !ok {
			return nil, fmt.Errorf("synced table %s: column %s has type %q; use text, bigint or double precision", table, col, typ)
		}
		t.Columns[col] = ct
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	for name := range s.Tables {
		if !hasID[name] {
			return nil, fmt.Errorf("synced table %s has no id column", name)
		}
	}
	return s, nil
}

// columnType maps PostgreSQL's names of the column types the twins use.
func columnType(pg string) (syncproto.ColumnType, bool) {
	switch pg {
	case "text":
		return syncproto.TypeText, true
	case "bigint", "integer", "smallint", "boolean":
		return syncproto.TypeInteger, true
	case "double precision", "real":
		return syncproto.TypeReal, true
	}
	return "", false
}
