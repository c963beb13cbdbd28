// Package device is the Relais device SDK: it keeps a local SQLite replica
// that the application reads and writes with plain SQL, captures every
// local write with triggers, and syncs with the server whenever a network
// is there.
//
//	r, err := device.Open(ctx, "relais.db", device.Options{})
//	r.DB().ExecContext(ctx, "INSERT INTO activite (id, type) VALUES (?, ?)", id, "individuel")
//	report, err := r.Sync(ctx)
package device

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// Options tunes a replica. Zero values take the defaults.
type Options struct {
	// HTTPClient sends exchanges; its Timeout bounds one exchange.
	HTTPClient *http.Client
	// BatchSize is the number of outbox entries pushed per exchange. Zero
	// lets it follow the link (see sizer): batches start at 1,000 entries
	// and grow, up to 4,000, while they are acknowledged quickly.
	BatchSize int
	// PageLimit is the number of cells asked for per pulled page. Zero
	// lets the page size follow the link (see sizer): pages start at
	// syncproto.DefaultPageLimit and grow while they arrive quickly.
	PageLimit int
	// MaxExchanges bounds one Sync, so a server that always says "more"
	// cannot keep a device busy forever.
	MaxExchanges int
	// RetryFor is how long one exchange is retried on network errors and
	// 5xx answers before Sync gives up until next time.
	RetryFor time.Duration
	// Progress, when set, is told how a Sync advances: after each
	// exchange (during a long pull, after each commit of a few pages),
	// and before each retry of an exchange that failed on the network or
	// a 5xx answer. It runs on the syncing goroutine and must
	// return quickly (the command line draws a progress line with it).
	Progress func(Progress)
	// DeviceName is sent at Login, for the fleet page and the conflicts
	// ("Tablette", "Téléphone"); empty leaves the server's name as it is.
	DeviceName string
	// SQLFunctions are Go functions callable from SQL run on DB(), for
	// tools where a person types SQL (UUIDFunction gives uuid()). The
	// capture triggers never call them: they stay pure SQL, so SDKs on
	// other platforms install the very same text.
	SQLFunctions map[string]any
	// AppVersion is reported to the server for the coordinators' fleet view.
	AppVersion string
	// ClockSkew shifts the wall clock this replica's hybrid clock reads,
	// in Go and in the capture triggers alike. It is a test and diagnostic
	// hook (the reliability simulation gives devices wrong clocks with it);
	// applications leave it zero.
	ClockSkew time.Duration
	// PushJSON sends pushes as JSON even to a server that reads their
	// column form, as SDKs did before it: a hook for tests and
	// measurements of older devices; applications leave it false.
	PushJSON bool
}

func (o *Options) defaults() {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if o.MaxExchanges == 0 {
		o.MaxExchanges = 100000
	}
	if o.RetryFor == 0 {
		o.RetryFor = 2 * time.Minute
	}
	if o.AppVersion == "" {
		o.AppVersion = "relais-go-sdk"
	}
}

// UUIDFunction is uuid() in SQL: a new version 7 UUID (time-ordered, as
// the SDK's own ids) on every call, for SQLFunctions.
var UUIDFunction = map[string]any{"uuid": func() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}}

// Progress is what a Sync has done so far.
type Progress struct {
	Report
	// Outbox is the number of local changes waiting when the Sync began.
	Outbox int
	// Retry, when set, is the error of an exchange about to be tried
	// again in RetryIn.
	Retry   error
	RetryIn time.Duration
}

// Replica is an open device replica.
type Replica struct {
	path   string
	opts   Options
	db     *store.DB
	node   string
	schema *syncproto.Schema
	// syncMu serialises Sync, Login and Wipe: one exchange at a time.
	syncMu sync.Mutex
	// access is what is known of the access token's life (see auth.go).
	access accessState
	// prepared keeps the merge's statements prepared across pulled pages.
	prepared *replica.Prepared
	// progress reports to Options.Progress during a Sync (syncMu held).
	progress func(retry error, wait time.Duration)
	// outbox is the outbox's SQL for this schema (outbox.go).
	outbox *OutboxSQL
	// pushColumns is set while the server's last exchange answer said it
	// reads requests in the column form (transport.go).
	pushColumns atomic.Bool
}

// The writer's page cache and WAL checkpoints are sized for the initial
// sync, a device's largest write: pages of thousands of cells on random
// UUID keys, whose B-tree pages spread over the whole file. With SQLite's
// defaults (2 MiB of cache, a checkpoint every 1,000 pages of WAL), the
// pages a pulled page dirties do not fit in the cache and spill to the
// WAL before the commit, and nearly every commit copies the WAL back into
// the database. With these, an initial sync takes markedly less time and
// somewhat less CPU (BENCHMARKS.md, "Figures behind the code"). The cache grows only as pages are read; the WAL file keeps the size it
// reached, at most about 40 MiB. Durability is unchanged: every commit
// still waits for its fsync.
const (
	writerCacheKiB         = 64 << 10
	walAutocheckpointPages = 10000
	// statementCache statements stay prepared on the writer (see
	// store.Options.StatementCache): the INSERT and UPDATE of each of an
	// application's forms, and the sync's own statements.
	statementCache = 64
)

// Open creates or opens the replica at path: it applies the migrations,
// gives the device its node id on first open, and installs the capture
// triggers.
func Open(ctx context.Context, path string, opts Options) (*Replica, error) {
	opts.defaults()
	db, err := store.Open(path, store.Options{SecureDelete: true, Readers: 2, TempInMemory: true,
		CacheKiB: writerCacheKiB, WALAutocheckpoint: walAutocheckpointPages, StatementCache: statementCache, Functions: opts.SQLFunctions})
	if err != nil {
		return nil, err
	}
	r := &Replica{path: path, opts: opts, db: db}
	if err := r.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open replica %s: %w", path, err)
	}
	return r, nil
}

func (r *Replica) init(ctx context.Context) error {
	if err := migrations.Up(ctx, r.db.W, migrations.Replica, migrations.Domain, migrations.Device); err != nil {
		return err
	}
	st, err := replica.Init(ctx, r.db.W)
	if err != nil {
		return err
	}
	r.node = st.Node
	// Always written, so that reopening without the option clears a skew
	// set by an earlier run.
	if _, err := r.db.W.ExecContext(ctx, "UPDATE _device SET clock_skew_ms = ? WHERE id = 1", r.opts.ClockSkew.Milliseconds()); err != nil {
		return fmt.Errorf("clock skew: %w", err)
	}
	return r.reloadSchema(ctx)
}

// wallClock is the physical clock the replica's hybrid clock reads.
func (r *Replica) wallClock() time.Time { return time.Now().Add(r.opts.ClockSkew) }

// reloadSchema reads the synced tables, installs their triggers, and
// materialises cells that were kept aside for columns that now exist.
func (r *Replica) reloadSchema(ctx context.Context) error {
	schema, err := replica.LoadSchema(ctx, r.db.W)
	if err != nil {
		return err
	}
	r.schema = schema
	if err := installTriggers(ctx, r.db.W, schema); err != nil {
		return err
	}
	cols, err := captureColumns(ctx, r.db.W, schema)
	if err != nil {
		return err
	}
	r.outbox = outboxSQL(cols)
	// After the triggers: a statement prepared on a domain table carries
	// the table's triggers compiled in.
	if r.prepared == nil {
		r.prepared = replica.NewPrepared(r.db.W)
	}
	if err := r.prepared.Warm(ctx, schema); err != nil {
		return err
	}
	return r.materialiseKeptAside(ctx)
}

// DB is the replica's database for the application's reads and writes.
// Writes to synced tables are captured by triggers; nothing else is needed
// to make them sync.
func (r *Replica) DB() *sql.DB { return r.db.W }

// Node is the device's id, the tie breaker in every version it writes.
func (r *Replica) Node() string { return r.node }

// Schema is the synced tables as this replica knows them.
func (r *Replica) Schema() *syncproto.Schema { return r.schema }

// Path is the replica's file.
func (r *Replica) Path() string { return r.path }

// Close closes the replica.
func (r *Replica) Close() error {
	perr := r.prepared.Close()
	if err := r.db.Close(); err != nil {
		return err
	}
	return perr
}

// Status is what a device knows of its sync state.
type Status struct {
	Node       string
	Server     string
	Email      string
	LoggedIn   bool
	Pending    int // changes (cells) waiting in the outbox
	Rejected   int
	Cursor     int64
	LastSync   time.Time // zero if never
	LastError  string
	Revoked    bool
	RevokedAt  time.Time
	SchemaVers int64
}

// Status reads the sync state.
func (r *Replica) Status(ctx context.Context) (Status, error) {
	st := Status{Node: r.node}
	var server, email, token, lastErr sql.NullString
	var lastSync, revoked sql.NullInt64
	err := r.db.W.QueryRowContext(ctx, `SELECT server, email, access_token, cursor, last_sync_at, last_error, revoked_at,
		(SELECT COUNT(*) FROM _rejected) FROM _device WHERE id = 1`).
		Scan(&server, &email, &token, &st.Cursor, &lastSync, &lastErr, &revoked, &st.Rejected)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if st.Pending, err = r.pendingChanges(ctx, r.db.W); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Server, st.Email, st.LastError = server.String, email.String, lastErr.String
	st.LoggedIn = token.Valid && token.String != ""
	if lastSync.Valid {
		st.LastSync = time.UnixMilli(lastSync.Int64)
	}
	if revoked.Valid {
		st.Revoked, st.RevokedAt = true, time.UnixMilli(revoked.Int64)
	}
	if st.SchemaVers, err = migrations.Version(ctx, r.db.W, migrations.Domain); err != nil {
		return st, err
	}
	return st, nil
}

// materialiseKeptAside writes into the domain tables the cells received
// before this replica knew their column (a newer server, an older app):
// on every open it compares the schema with the one seen last time and
// rebuilds the rows that have cells in the new columns.
func (r *Replica) materialiseKeptAside(ctx context.Context) error {
	var before string
	if err := r.db.W.QueryRowContext(ctx, "SELECT known_columns FROM _device WHERE id = 1").Scan(&before); err != nil {
		return fmt.Errorf("kept-aside cells: %w", err)
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(before, "\n") {
		seen[c] = true
	}
	var now []string
	var added [][2]string
	for _, t := range r.schema.TableNames() {
		for _, c := range r.schema.Tables[t].ColumnNames() {
			name := t + "." + c
			now = append(now, name)
			if !seen[name] {
				added = append(added, [2]string{t, c})
			}
		}
	}
	return r.applyLocal(ctx, func(tx *sql.Tx) error {
		for _, tc := range added {
			if _, err := replica.MaterialiseColumn(ctx, tx, r.schema, tc[0], tc[1]); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE _device SET known_columns = ? WHERE id = 1", strings.Join(now, "\n"))
		return err
	})
}

// applyLocal runs fn with the capture triggers silenced, for writes that
// come from elsewhere and must not be echoed back to the server.
func (r *Replica) applyLocal(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return r.db.Write(ctx, func(tx *sql.Tx) error {
		return r.silenced(ctx, tx, func() error { return fn(tx) })
	})
}

// ErrNotLoggedIn is what Sync returns before any Login, or after a
// revocation erased the link to the account.
var ErrNotLoggedIn = errors.New("this device is not logged in: run `relais device login` first")
