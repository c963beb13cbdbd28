// Package pgstore opens a PostgreSQL database as a store.DB, for a
// server that outgrew one machine: several Relais servers then share it.
// It is a package of its own so that the device SDK, which opens SQLite
// only, does not carry the PostgreSQL driver.
package pgstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/store"
)

// IsPostgresURL says whether a --store value names a PostgreSQL server
// (postgres:// or postgresql://) rather than the embedded SQLite.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Options tunes Open.
type Options struct {
	// MaxConns bounds the connections this process opens (default 16).
	// Several servers share one PostgreSQL: their sum must stay under
	// its max_connections.
	MaxConns int
}

// Open connects to the PostgreSQL database at url. W and R are
// the same pool: PostgreSQL takes row locks itself, so writes need no
// funnel of one connection, and a read sees what is committed.
//
// Statements are written once for both engines, in SQLite's placeholder
// spelling (? and ?N): the connections given out rewrite them to $N
// before PostgreSQL parses them (Rebind), so the code that runs the
// statements does not need to know which engine it speaks to.
func Open(ctx context.Context, url string, opt Options) (*store.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL address %s: %w", redactURL(url), err)
	}
	db := sql.OpenDB(rebindConnector{stdlib.GetConnector(*cfg, stdlib.OptionAfterConnect(registerAffinity))})
	n := opt.MaxConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", redactURL(url), err)
	}
	return &store.DB{Path: redactURL(url), W: db, R: db, Engine: store.Postgres}, nil
}

// redactURL hides a password in an address shown in messages and logs.
func redactURL(u string) string {
	cfg, err := pgconn.ParseConfig(u)
	if err != nil || cfg.Password == "" {
		return u
	}
	return strings.Replace(u, ":"+cfg.Password+"@", ":…@", 1)
}

// rebindConnector hands out pgx connections that rewrite placeholders.
type rebindConnector struct{ inner driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{Conn: conn.(*stdlib.Conn)}, nil
}

func (c rebindConnector) Driver() driver.Driver { return c.inner.Driver() }

// rebindConn is a pgx connection whose statements are rewritten by
// Rebind; every other method (transactions, session reset, value checks)
// is pgx's own.
type rebindConn struct{ *stdlib.Conn }

func (c *rebindConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(Rebind(query))
}

func (c *rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, Rebind(query))
}

func (c *rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, Rebind(query), args)
}

func (c *rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, Rebind(query), args)
}

// Rebind rewrites SQLite's placeholders as PostgreSQL's: ?N becomes $N,
// and a bare ? takes the number after the largest given so far (SQLite's
// own rule), so "a = ?1 OR b = ?1 AND c = ?" reads $1, $1, $2. Question
// marks inside string literals, quoted identifiers and comments are left
// alone.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	largest := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case ch == '\'' || ch == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == ch {
					if j+1 < len(query) && query[j+1] == ch { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
		case ch == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case ch == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			end := len(query)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(query[i:end])
			i = end - 1
		case ch == '?':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n := largest + 1
			if j > i+1 {
				n, _ = strconv.Atoi(query[i+1 : j])
			}
			largest = max(largest, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// IsUniqueViolation says whether err is a unique or primary key
// constraint refusing a row, on either engine.
func IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var lite sqlite3.Error
	if errors.As(err, &lite) {
		return lite.ExtendedCode == sqlite3.ErrConstraintUnique || lite.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return false
}
