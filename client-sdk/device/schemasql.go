package device

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the driver of the in-memory replica SchemaSQL reads

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// A device replica is made of SQL: the migrations of the replica, domain
// and device sets, then the capture, owner and rule triggers generated
// from the schema they leave. SDKs in other languages (the web SDK,
// client-sdk/web) must build exactly the same replica, so they do not
// write this SQL again: the server serves SchemaSQL's answer (GET
// syncproto.PathDeviceSchema) and they run it. The Go SDK runs the same
// migrations (through goose, from the same files) and installs the same
// triggers (replicaTriggers, which SchemaSQL calls too).

// ReplicaSQL is the SQL of a device replica, in the order a device runs it.
type ReplicaSQL struct {
	// Version is a digest of everything below: a device that installed
	// this version has nothing to do.
	Version string `json:"version"`
	// DomainVersion is the newest domain migration, the schema version a
	// device reports in its exchanges.
	DomainVersion int64 `json:"domain_version"`
	// Migrations, in order: each one's "Up" section, a script of one or
	// more statements to run whole (SQLite's own exec splits it), in one
	// transaction, once. Then a replica that holds _cells (the per-cell
	// layout's table, which the first replica migrations create) converts
	// it into version records and drops it (see SchemaSQL).
	Migrations []MigrationSQL `json:"migrations"`
	// Triggers are installed after the migrations, each statement alone;
	// they are dropped and installed again when Version changes.
	Triggers []string `json:"triggers"`
	// Tables are the synced tables: column name to type (TEXT, INTEGER,
	// REAL), the id column included.
	Tables map[string]map[string]string `json:"tables"`
	// Erase are the statements that erase a beneficiary on a device
	// (domain.EraseOnDevice), with its id as parameter ?1.
	Erase []string `json:"erase"`
	// Rules are the domain rules the triggers check, for an application
	// to place a rule's French message next to the columns it reads.
	Rules []RuleSQL `json:"rules"`
	// Outbox is the SQL that cuts, freezes, reads and acknowledges the
	// outbox's entries (outbox.go): the same text on every SDK. Absent
	// from the per-cell layout.
	Outbox *OutboxSQL `json:"outbox,omitempty"`
}

// MigrationSQL is one migration file's "Up" section.
type MigrationSQL struct {
	Set     string `json:"set"`
	Version int64  `json:"version"`
	Up      string `json:"up"`
}

// RuleSQL describes one domain rule.
type RuleSQL struct {
	Name    string   `json:"name"`
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	Message string   `json:"message"`
}

// replicaSets are the migration sets of a device replica, in the order
// Open applies them.
var replicaSets = []migrations.Set{migrations.Replica, migrations.Domain, migrations.Device}

// SchemaSQL returns the SQL of a device replica of this version. It
// builds a replica in memory to read the schema the migrations leave,
// so the triggers are generated from the tables a device really has.
//
// The migrations are the files as they are: the first two replica
// migrations create _cells, the per-cell layout's table, which an SDK
// converts into version records and drops once they have run, before it
// installs the triggers (replica.Init's upgradeCells; the web SDK's
// upgradeCells in client-sdk/web/src/rows.ts). On a fresh replica there
// is nothing to convert and the table is only dropped.
func SchemaSQL(ctx context.Context) (*ReplicaSQL, error) {
	out := &ReplicaSQL{Tables: map[string]map[string]string{}}
	for _, set := range replicaSets {
		ms, err := migrationScripts(set)
		if err != nil {
			return nil, err
		}
		out.Migrations = append(out.Migrations, ms...)
	}
	// One connection to an in-memory database (each connection to
	// ":memory:" would be a database of its own); store.Open is for
	// files, and would leave one named ":memory:" for its readers.
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := migrations.Up(ctx, db, replicaSets...); err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	if out.DomainVersion, err = migrations.Version(ctx, db, migrations.Domain); err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	schema, err := replica.LoadSchema(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	cols, err := captureColumns(ctx, db, schema)
	if err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	out.Triggers = replicaTriggers(schema, cols)
	out.Outbox = outboxSQL(cols)
	for _, name := range schema.TableNames() {
		cols := map[string]string{}
		for c, typ := range schema.Tables[name].Columns {
			cols[c] = string(typ)
		}
		out.Tables[name] = cols
	}
	rec := &recordingExecer{}
	if err := domain.EraseOnDevice(ctx, rec, "?1"); err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	out.Erase = rec.stmts
	for _, r := range domain.Rules() {
		if _, ok := schema.Tables[r.Table]; ok {
			out.Rules = append(out.Rules, RuleSQL{Name: r.Name, Table: r.Table, Columns: r.Columns(), Message: r.Message})
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("schema sql: %w", err)
	}
	sum := sha256.Sum256(body)
	out.Version = hex.EncodeToString(sum[:12])
	return out, nil
}

// migrationScripts reads a set's files in version order and keeps each
// one's "Up" section. goose's annotations are SQL comments, so the
// section runs as it is.
func migrationScripts(set migrations.Set) ([]MigrationSQL, error) {
	fsys, err := migrations.FS(set)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("schema sql: %s: %w", set, err)
	}
	var out []MigrationSQL
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("schema sql: %s/%s: %w", set, e.Name(), err)
		}
		text, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("schema sql: %s/%s: %w", set, e.Name(), err)
		}
		up, ok := upSection(string(text))
		if !ok {
			return nil, fmt.Errorf("schema sql: %s/%s has no -- +goose Up section", set, e.Name())
		}
		out = append(out, MigrationSQL{Set: string(set), Version: v, Up: up})
	}
	slices.SortFunc(out, func(a, b MigrationSQL) int { return int(a.Version - b.Version) })
	return out, nil
}

// upSection is the text between the "-- +goose Up" and "-- +goose Down"
// lines (to the end when there is no Down).
func upSection(text string) (string, bool) {
	var b strings.Builder
	in, found := false, false
	for _, line := range strings.Split(text, "\n") {
		switch strings.TrimSpace(line) {
		case "-- +goose Up":
			in, found = true, true
			continue
		case "-- +goose Down":
			in = false
			continue
		}
		if in {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return strings.TrimSpace(b.String()) + "\n", found
}

// replicaTriggers are the triggers a replica of schema carries, in the
// order they are created: for each table its capture, then its checks
// (owner, the domain's rules, types), then the erasure scrub, then the
// owner's other triggers. SQLite fires the triggers of one event in the
// reverse order of their creation: the administrators' tables' guard
// first, then the checks, then the capture's stash, so a refused write
// stashes nothing.
func replicaTriggers(schema *syncproto.Schema, cols map[string][]string) []string {
	var want []string
	rules := domain.DeviceRuleCases(schema)
	for _, name := range schema.TableNames() {
		want = append(want, captureTriggers(schema.Tables[name], cols[name], updatedApart(schema, name))...)
		want = append(want, checkTriggers(schema, schema.Tables[name], rules[name])...)
	}
	// The erasure scrub (package domain); its names start with _check_,
	// so installTriggers drops them with the others.
	want = append(want, domain.DeviceTriggers(schema)...)
	return append(want, ownerTriggers(schema, notApplying)...)
}

// recordingExecer keeps the statements domain.EraseOnDevice would run,
// with its argument written as a parameter.
type recordingExecer struct{ stmts []string }

func (r *recordingExecer) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	if len(args) != 1 || args[0] != "?1" {
		return nil, fmt.Errorf("erase statement with unexpected arguments: %q", query)
	}
	r.stmts = append(r.stmts, strings.ReplaceAll(query, "?", "?1"))
	return driverResult(1), nil
}

type driverResult int64

func (r driverResult) LastInsertId() (int64, error) { return 0, nil }
func (r driverResult) RowsAffected() (int64, error) { return int64(r), nil }

// SchemaJSON is the answer the server serves: SchemaSQL's, in JSON.
func SchemaJSON(ctx context.Context) ([]byte, error) {
	s, err := SchemaSQL(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}
