package server

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/syncproto"
)

// sqliteRules runs the domain rules of a server on PostgreSQL where they
// were written for: SQLite. The rules are SQL expressions in SQLite's
// dialect (date(), julianday(), GLOB, IS NOT), written once for the
// devices' capture triggers and the server's checks (package domain);
// rather than keep a second spelling of each, the server copies the rows
// a check names into an in-memory SQLite and runs the same check query
// there (docs/DESIGN.md, "Several servers on one PostgreSQL").
type sqliteRules struct {
	schema *syncproto.Schema
	mem    *sql.DB // every connection is a private in-memory database
	checks map[string]string
}

// newSQLiteRules prepares the check of schema's rules.
func newSQLiteRules(schema *syncproto.Schema) (*sqliteRules, error) {
	// ":memory:" gives each connection a database of its own: a check
	// copies and queries on one connection, and concurrent checks never
	// see each other's rows.
	mem := sql.OpenDB(memConnector{})
	mem.SetMaxIdleConns(4)
	r := &sqliteRules{schema: schema, mem: mem, checks: map[string]string{}}
	// Each check query reads one table, named after FROM.
	for _, q := range domain.CheckQueries(schema) {
		for table := range schema.Tables {
			if strings.Contains(q, ` FROM "`+table+`" AS r `) {
				r.checks[q] = table
			}
		}
	}
	if len(r.checks) != len(domain.RulesFor(schema)) {
		mem.Close()
		return nil, fmt.Errorf("rules: %d check queries for %d tables with rules", len(r.checks), len(domain.RulesFor(schema)))
	}
	return r, nil
}

type memConnector struct{}

func (memConnector) Connect(context.Context) (driver.Conn, error) {
	return (&sqlite3.SQLiteDriver{}).Open(":memory:")
}

func (memConnector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }

// Close releases the in-memory databases.
func (r *sqliteRules) Close() error { return r.mem.Close() }

// On returns the domain.Querier to hand the domain checks for a
// transaction on PostgreSQL: check queries run on a copy, every other
// statement on tx.
func (r *sqliteRules) On(tx domain.Querier) domain.Querier { return rulesQuerier{r: r, tx: tx} }

type rulesQuerier struct {
	r  *sqliteRules
	tx domain.Querier
}

func (q rulesQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.tx.ExecContext(ctx, query, args...)
}

func (q rulesQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.tx.QueryRowContext(ctx, query, args...)
}

func (q rulesQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	table, ok := q.r.checks[query]
	if !ok || len(args) != 1 {
		return q.tx.QueryContext(ctx, query, args...)
	}
	conn, err := q.r.mem.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("rules on a copy: %w", err)
	}
	if err := q.r.copyRows(ctx, q.tx, conn, table, args[0]); err != nil {
		conn.Close()
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, query, args...)
	// The connection goes back to the pool once the caller has closed the
	// rows: Close waits for them, so it waits on a goroutine of its own.
	go conn.Close()
	return rows, err
}

// copyRows puts in conn's table the rows of table whose ids are in the
// JSON array ids, as tx sees them (its own writes included).
func (r *sqliteRules) copyRows(ctx context.Context, tx domain.Querier, conn *sql.Conn, table string, ids any) error {
	t := r.schema.Tables[table]
	cols := append([]string{"id"}, t.ColumnNames()...)
	quoted := make([]string, len(cols))
	defs := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = `"` + c + `"`
		typ := "TEXT PRIMARY KEY"
		if c != "id" {
			typ = string(t.Columns[c])
		}
		defs[i] = quoted[i] + " " + typ
	}
	ddl := fmt.Sprintf(`DROP TABLE IF EXISTS "%[1]s"; CREATE TABLE "%[1]s" (%[2]s)`, table, strings.Join(defs, ", "))
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("rules on a copy of %s: %w", table, err)
	}
	src, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM "%s" WHERE id IN (SELECT value FROM json_each(?))`,
		strings.Join(quoted, ", "), table), ids)
	if err != nil {
		return fmt.Errorf("rules: read %s: %w", table, err)
	}
	defer src.Close()
	ins, err := conn.PrepareContext(ctx, fmt.Sprintf(`INSERT INTO "%s" (%s) VALUES (%s)`,
		table, strings.Join(quoted, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")))
	if err != nil {
		return fmt.Errorf("rules on a copy of %s: %w", table, err)
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for src.Next() {
		if err := src.Scan(ptrs...); err != nil {
			return fmt.Errorf("rules: read %s: %w", table, err)
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return fmt.Errorf("rules on a copy of %s: %w", table, err)
		}
	}
	if err := src.Err(); err != nil {
		return fmt.Errorf("rules: read %s: %w", table, err)
	}
	return nil
}
