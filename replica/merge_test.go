package replica_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// tester is what the helpers need of *testing.T and *rapid.T alike.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// engine is a store the merge runs on: the tests of this package run on
// both (one suite, two stores), SQLite as devices and a single server
// keep it, PostgreSQL as several servers share it.
type engine struct {
	name string
	t    *testing.T        // the (sub)test PostgreSQL databases belong to
	dbs  map[string]string // PostgreSQL: a database per replica name, emptied on each open
}

func (e *engine) postgres() bool { return e.name == "postgres" }

// eachEngine runs fn as a subtest per engine.
func eachEngine(t *testing.T, fn func(t *testing.T, e *engine)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { fn(t, &engine{name: name, t: t, dbs: map[string]string{}}) })
	}
}

// openReplica creates an empty replica with the real migrations: a file
// in dir, or on PostgreSQL a database of the engine's test, emptied (a
// property test opens replicas by the hundred; a database each would
// cost more than the test).
func openReplica(tb tester, e *engine, dir, name string) (*store.DB, *syncproto.Schema) {
	tb.Helper()
	if e.postgres() {
		return openPostgresReplica(tb, e, name)
	}
	ctx := context.Background()
	db, err := store.Open(filepath.Join(dir, name+".db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := migrations.Up(ctx, db.W, migrations.Replica, migrations.Domain); err != nil {
		tb.Fatal(err)
	}
	if _, err := replica.Init(ctx, db.W); err != nil {
		tb.Fatal(err)
	}
	schema, err := replica.LoadSchema(ctx, db.W)
	if err != nil {
		tb.Fatal(err)
	}
	return db, schema
}

func openPostgresReplica(tb tester, e *engine, name string) (*store.DB, *syncproto.Schema) {
	tb.Helper()
	ctx := context.Background()
	url, ok := e.dbs[name]
	if !ok {
		url = pgtest.DB(e.t)
		e.dbs[name] = url
	}
	db, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 4})
	if err != nil {
		tb.Fatal(err)
	}
	if !ok {
		if err := migrations.UpPostgres(ctx, db.W, migrations.Compat, migrations.Replica, migrations.Domain); err != nil {
			tb.Fatal(err)
		}
	}
	schema, err := pgstore.LoadSchema(ctx, db.W)
	if err != nil {
		tb.Fatal(err)
	}
	// DELETE rather than TRUNCATE: on tables of a few rows it costs a
	// fraction of TRUNCATE's (which replaces every file), and the tests
	// never compare the dictionaries' numbers.
	tables := append([]string{"_rows", "_tables", "_columns", "_nodes", "_owners", "_conflicts", "_replica"}, schema.TableNames()...)
	for i, tbl := range tables {
		tables[i] = "DELETE FROM " + tbl
	}
	if _, err := db.W.ExecContext(ctx, strings.Join(tables, "; ")); err != nil {
		tb.Fatal(err)
	}
	if _, err := replica.Init(ctx, db.W); err != nil {
		tb.Fatal(err)
	}
	return db, schema
}

// serverOptions are the merge options of a server on the engine.
func serverOptions(e *engine, opt replica.Options) replica.Options {
	opt.AssignSeq = true
	opt.Shared = e.postgres()
	return opt
}

func apply(tb tester, db *store.DB, schema *syncproto.Schema, changes []syncproto.Change, opt replica.Options) replica.Result {
	tb.Helper()
	var res replica.Result
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		var err error
		res, err = replica.Apply(context.Background(), tx, schema, changes, opt)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// dump is a canonical text of the replica's synced state: the domain
// table and every cell's value and version.
func dump(tb tester, db *store.DB) string {
	tb.Helper()
	return relaistest.Dump(tb, db.W, "SELECT id, type, duree, notes FROM activite ORDER BY id") +
		relaistest.CellsText(tb, db.W, false, false)
}

var rowIDs = []string{"0192f1a0-0000-7000-8000-000000000001", "0192f1a0-0000-7000-8000-000000000002"}

func genChange(t *rapid.T) syncproto.Change {
	col := rapid.SampledFrom([]string{"type", "duree", "notes", syncproto.DeletedColumn}).Draw(t, "col")
	var val any
	switch col {
	case "type", "notes":
		val = rapid.SampledFrom([]any{nil, "individuel", "collectif", "é"}).Draw(t, "text")
	case "duree":
		val = rapid.SampledFrom([]any{nil, int64(15), int64(90)}).Draw(t, "int")
	default:
		val = int64(rapid.IntRange(0, 1).Draw(t, "tomb"))
	}
	return syncproto.Change{
		Table: "activite", PK: rapid.SampledFrom(rowIDs).Draw(t, "pk"), Column: col, Value: val,
		Version: syncproto.Version{
			HLC:  syncproto.Timestamp(rapid.Int64Range(1, 12).Draw(t, "hlc")),
			Node: rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "node"),
		},
		Prev: syncproto.Version{HLC: syncproto.Timestamp(rapid.Int64Range(0, 12).Draw(t, "prev"))},
	}
}

// Replicas that receive the same changes in any order, in any grouping
// into batches, any number of times, hold the same state: the merge
// engine is commutative, associative and idempotent on real SQLite.
func TestApplyConverges(t *testing.T) { eachEngine(t, testApplyConverges) }

func testApplyConverges(tt *testing.T, e *engine) {
	opt := replica.Options{} // a device's
	if e.postgres() {
		opt = serverOptions(e, opt)
	}
	rapid.Check(tt, func(t *rapid.T) {
		changes := rapid.SliceOfN(rapid.Custom(genChange), 1, 25).Draw(t, "changes")
		// Two writes with the same version are the same write; keep the
		// generated set consistent with that.
		seen := map[string]bool{}
		var set []syncproto.Change
		for _, c := range changes {
			k := fmt.Sprint(c.PK, c.Column, c.Version)
			if !seen[k] {
				seen[k] = true
				set = append(set, c)
			}
		}
		dir, err := os.MkdirTemp("", "relais-merge-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)

		ref, schema := openReplica(t, e, dir, "ref")
		defer ref.Close()
		apply(t, ref, schema, set, opt)
		want := dump(t, ref)

		other, _ := openReplica(t, e, dir, "other")
		defer other.Close()
		perm := rapid.Permutation(set).Draw(t, "order")
		for len(perm) > 0 {
			n := rapid.IntRange(1, len(perm)).Draw(t, "batch")
			apply(t, other, schema, perm[:n], opt)
			perm = perm[n:]
		}
		if got := dump(t, other); got != want {
			t.Fatalf("replicas diverge:\nin order:\n%s\npermuted:\n%s", want, got)
		}
		res := apply(t, other, schema, set, opt)
		if res.Won != 0 {
			t.Fatalf("re-applying changed %d cells", res.Won)
		}
		if got := dump(t, other); got != want {
			t.Fatal("re-applying changed the state")
		}
	})
}

func v(hlc int64, node string) syncproto.Version {
	return syncproto.Version{HLC: syncproto.Timestamp(hlc), Node: node}
}

func change(pk, col string, val any, ver, prev syncproto.Version) syncproto.Change {
	return syncproto.Change{Table: "activite", PK: pk, Column: col, Value: val, Version: ver, Prev: prev}
}

func TestConflictsAreRecordedOnce(t *testing.T) { eachEngine(t, testConflictsAreRecordedOnce) }

func testConflictsAreRecordedOnce(t *testing.T, e *engine) {
	db, schema := openReplica(t, e, t.TempDir(), "server")
	defer db.Close()
	opt := serverOptions(e, replica.Options{RecordConflicts: true})
	id := rowIDs[0]
	apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(30), v(10, "a"), v(0, ""))}, opt)

	// b saw a's write: a plain succession, not a conflict.
	res := apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(45), v(20, "b"), v(10, "a"))}, opt)
	if len(res.Conflicts) != 0 || res.Won != 1 {
		t.Fatalf("succession: %+v", res)
	}
	// c wrote from the old version, later: wins, and b's write is kept.
	res = apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(60), v(30, "c"), v(10, "a"))}, opt)
	if len(res.Conflicts) != 1 || res.Conflicts[0].Loser != v(20, "b") {
		t.Fatalf("concurrent winner: %+v", res)
	}
	// d wrote from the old version, earlier: loses, and is kept.
	res = apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(15), v(25, "d"), v(10, "a"))}, opt)
	if len(res.Conflicts) != 1 || res.Conflicts[0].Loser != v(25, "d") || res.Lost != 1 {
		t.Fatalf("concurrent loser: %+v", res)
	}
	// The same losing write delivered again is not recorded twice.
	apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(15), v(25, "d"), v(10, "a"))}, opt)

	rows, err := db.W.Query("SELECT winner_val, winner_node, loser_val, loser_node FROM _conflicts ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var wv, lv int64
		var wn, ln string
		if err := rows.Scan(&wv, &wn, &lv, &ln); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d@%s>%d@%s", wv, wn, lv, ln))
	}
	want := []string{"60@c>45@b", "60@c>15@d"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("conflicts %v, want %v", got, want)
	}
	var duree int64
	if err := db.W.QueryRow("SELECT duree FROM activite WHERE id = ?", id).Scan(&duree); err != nil || duree != 60 {
		t.Fatalf("duree %d (%v), want 60", duree, err)
	}
}

func TestTombstones(t *testing.T) { eachEngine(t, testTombstones) }

func testTombstones(t *testing.T, e *engine) {
	db, schema := openReplica(t, e, t.TempDir(), "r")
	opt := replica.Options{} // a device's
	if e.postgres() {
		opt = serverOptions(e, opt)
	}
	defer db.Close()
	id := rowIDs[0]
	count := func() int {
		var n int
		if err := db.W.QueryRow("SELECT COUNT(*) FROM activite WHERE id = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	apply(t, db, schema, []syncproto.Change{
		change(id, "type", "individuel", v(1, "a"), v(0, "")),
		change(id, "duree", int64(30), v(1, "a"), v(0, "")),
	}, opt)
	apply(t, db, schema, []syncproto.Change{change(id, syncproto.DeletedColumn, int64(1), v(5, "b"), v(0, ""))}, opt)
	if count() != 0 {
		t.Fatal("deleted row still there")
	}
	// An edit made after the delete, elsewhere, does not bring it back...
	apply(t, db, schema, []syncproto.Change{change(id, "duree", int64(45), v(6, "a"), v(1, "a"))}, opt)
	if count() != 0 {
		t.Fatal("an edit undid a delete")
	}
	// ...an explicit re-creation does, with every cell's current value.
	apply(t, db, schema, []syncproto.Change{change(id, syncproto.DeletedColumn, int64(0), v(7, "a"), v(5, "b"))}, opt)
	var typ string
	var duree int64
	if err := db.W.QueryRow("SELECT type, duree FROM activite WHERE id = ?", id).Scan(&typ, &duree); err != nil {
		t.Fatal(err)
	}
	if typ != "individuel" || duree != 45 {
		t.Fatalf("re-created row has %q %d", typ, duree)
	}
	// An older delete arriving late loses to the re-creation.
	apply(t, db, schema, []syncproto.Change{change(id, syncproto.DeletedColumn, int64(1), v(6, "c"), v(0, ""))}, opt)
	if count() != 1 {
		t.Fatal("an older delete won over a newer re-creation")
	}
}

func TestSequenceNumbersIncrease(t *testing.T) { eachEngine(t, testSequenceNumbersIncrease) }

func testSequenceNumbersIncrease(t *testing.T, e *engine) {
	ctx := context.Background()
	db, schema := openReplica(t, e, t.TempDir(), "server")
	defer db.Close()
	opt := serverOptions(e, replica.Options{})
	apply(t, db, schema, []syncproto.Change{change(rowIDs[0], "type", "a", v(1, "a"), v(0, "")), change(rowIDs[1], "type", "b", v(1, "a"), v(0, ""))}, opt)
	apply(t, db, schema, []syncproto.Change{change(rowIDs[0], "type", "c", v(2, "a"), v(1, "a"))}, opt)
	page, err := replica.ReadPage(ctx, db.R, schema, 0, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first cell moved on: only its latest version is served, after the other.
	if len(page.Changes) != 2 || page.Changes[0].PK != rowIDs[1] || page.Changes[1].Value != "c" || page.More || page.Cursor != 3 {
		t.Fatalf("page %+v", page)
	}
	first, err := replica.ReadPage(ctx, db.R, schema, 0, 1, nil)
	if err != nil || !first.More || first.Cursor != 2 {
		t.Fatalf("first page %+v %v", first, err)
	}
	rest, err := replica.ReadPage(ctx, db.R, schema, first.Cursor, 1, nil)
	if err != nil || rest.More || len(rest.Changes) != 1 || rest.Changes[0].Value != "c" {
		t.Fatalf("second page %+v %v", rest, err)
	}
}
