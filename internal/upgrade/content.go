package upgrade

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// ReadTables reads every domain table of a replica (the tables whose
// name starts with neither "_" nor "sqlite_"), rows in id order. The
// domain tables are the same in every layout, so a converted replica is
// read with it too.
func ReadTables(ctx context.Context, db *sql.DB) (map[string][]map[string]any, error) {
	names, err := column(ctx, db, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE '\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]map[string]any, len(names))
	for _, n := range names {
		rows, err := ReadRows(ctx, db, `SELECT * FROM "`+strings.ReplaceAll(n, `"`, `""`)+`" ORDER BY id`)
		if err != nil {
			return nil, err
		}
		out[n] = rows
	}
	return out, nil
}

// ReadRows runs a query and returns each row as a map from column name
// to value, text that SQLite hands back as bytes turned into a string.
func ReadRows(ctx context.Context, db *sql.DB, query string, args ...any) ([]map[string]any, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", query, err)
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	return out, nil
}

func column(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := ReadRows(ctx, db, query)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		for _, v := range r {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out, nil
}
