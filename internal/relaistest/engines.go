package relaistest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// Engine is one of the stores a server can keep its state in. Tests of
// what must behave the same on both loop over Engines: one suite, two
// stores. A package whose tests do must run them through pgtest.Main.
type Engine struct {
	Name string
	// New makes an empty store for this test and returns its address
	// (a data directory, or a PostgreSQL URL).
	New func(t testing.TB) string
	// Open opens the store at an address as one server process does:
	// opened twice, it is two servers sharing one database.
	Open func(t testing.TB, addr string) *store.DB
}

// Engines are SQLite (the default, one server) and PostgreSQL (several
// servers on one database).
func Engines() []Engine {
	return []Engine{
		{
			Name: "sqlite",
			New:  func(t testing.TB) string { return t.TempDir() },
			Open: func(t testing.TB, dir string) *store.DB {
				t.Helper()
				db, err := server.OpenDB(context.Background(), dir)
				return closeLater(t, db, err)
			},
		},
		{
			Name: "postgres",
			New:  func(t testing.TB) string { return pgtest.DB(t) },
			Open: func(t testing.TB, url string) *store.DB {
				t.Helper()
				db, err := server.OpenPostgres(context.Background(), url)
				return closeLater(t, db, err)
			},
		},
	}
}

func closeLater(t testing.TB, db *store.DB, err error) *store.DB {
	t.Helper()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return db
}

// DomainSchema is the synced schema as the domain migrations define it,
// read from a fresh SQLite server database: the same on both engines
// (TestPostgresTwins keeps the PostgreSQL twins in step), for tests that
// serve part of the server on a store without a whole server.New.
func DomainSchema(t testing.TB) *syncproto.Schema {
	t.Helper()
	db, err := server.OpenDB(context.Background(), t.TempDir())
	db = closeLater(t, db, err)
	schema, err := replica.LoadSchema(context.Background(), db.R)
	if err != nil {
		t.Fatalf("load the domain schema: %v", err)
	}
	return schema
}

// EachEngine runs fn as a subtest on each engine, named after it: the
// same test, on SQLite and on PostgreSQL.
func EachEngine(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run(e.Name, func(t *testing.T) { fn(t, e) })
	}
}

// Start starts a server, as StartServer does, on a fresh store of this
// engine: a new data directory, or a new PostgreSQL database (unless cfg
// names one already).
func (e Engine) Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if e.Name == "postgres" && cfg.Store == "" {
		cfg.Store = e.New(t)
	}
	return StartServer(t, cfg)
}

// StartTwoTablets is relaistest.StartTwoTablets on a fresh store of this
// engine.
func (e Engine) StartTwoTablets(t testing.TB, cfg server.Config, email, role string) TwoTablets {
	t.Helper()
	if e.Name == "postgres" && cfg.Store == "" {
		cfg.Store = e.New(t)
	}
	return StartTwoTablets(t, cfg, email, role)
}

// Tables lists every table of a database on either engine: the tests
// that look for a value left anywhere (an erasure's) read them all.
func Tables(t Fataler, db *sql.DB) []string {
	t.Helper()
	q := "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	if _, lite := db.Driver().(*sqlite3.SQLiteDriver); lite {
		q = "SELECT name FROM sqlite_master WHERE type = 'table'"
	}
	_, rows := Rows(t, db, q)
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = Text(r[0])
	}
	return out
}
