package replica_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// TestValuesAsHeld: for any writes (deletions, re-creations, a column the
// schema does not know, keys that are UUIDs and keys that are not), Values
// gives for every key asked (repeated, or never written) what HeldRow
// reads back for it: the live row's values, a deleted row's kept ones,
// nothing for a row the replica does not hold. Values reads the live rows
// with UUID keys by one query joining the domain table to _rows and the
// others by their records; HeldRow reads each row by its record alone.
func TestValuesAsHeld(t *testing.T) { eachEngine(t, testValuesAsHeld) }

func testValuesAsHeld(t *testing.T, e *engine) {
	// One replica for every case, each case on keys of its own: opening
	// a PostgreSQL replica per case cost more than the test.
	db, schema := openReplica(t, e, t.TempDir(), "values")
	defer db.Close()
	var hlc syncproto.Timestamp
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		keys := []string{
			fmt.Sprintf("0192f1a0-0000-7000-8000-%08x0001", run), fmt.Sprintf("0192f1a0-0000-7000-8000-%08x0002", run),
			fmt.Sprintf("0192f1a0-0000-7000-8000-%08x0003", run), fmt.Sprintf("key-%d-that-is-not-a-uuid", run),
			fmt.Sprintf("0192F1A0-0000-7000-8000-%08X0004", run), // a UUID, not in the form the merge keys by its bytes
		}
		never := fmt.Sprintf("0192f1a0-0000-7000-8000-%08x00ff", run)
		for range rapid.IntRange(1, 4).Draw(rt, "batches") {
			var changes []syncproto.Change
			for range rapid.IntRange(1, 10).Draw(rt, "changes") {
				hlc++
				col := rapid.SampledFrom([]string{"type", "date", "notes", "futur", syncproto.DeletedColumn}).Draw(rt, "column")
				var val any = fmt.Sprintf("v%d", hlc)
				if col == syncproto.DeletedColumn {
					val = int64(rapid.IntRange(0, 1).Draw(rt, "tombstone"))
				} else if rapid.IntRange(0, 4).Draw(rt, "null") == 0 {
					val = nil
				}
				changes = append(changes, syncproto.Change{Table: "activite", PK: rapid.SampledFrom(keys).Draw(rt, "pk"),
					Column: col, Value: val, Version: syncproto.Version{HLC: hlc, Node: "n"}})
			}
			apply(rt, db, schema, changes, serverOptions(e, replica.Options{}))
		}
		cols := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"type", "date", "notes", "duree", "futur"}), 1, 3, rapid.ID[string]).Draw(rt, "columns")
		asked := rapid.SliceOfN(rapid.SampledFrom(append([]string{never}, keys...)), 1, 8).Draw(rt, "asked")
		ctx := context.Background()
		tx, err := db.R.BeginTx(ctx, nil)
		if err != nil {
			rt.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // read-only
		got, err := replica.Values(ctx, tx, schema, "activite", asked, cols)
		if err != nil {
			rt.Fatal(err)
		}
		want := map[string]map[string]any{}
		for _, pk := range asked {
			held, err := replica.HeldRow(ctx, tx, schema, "activite", pk)
			if err != nil {
				rt.Fatal(err)
			}
			if held == nil {
				continue
			}
			m := map[string]any{}
			for _, col := range cols {
				m[col] = held[col].Value
			}
			want[replica.PKText(replica.PKArg(pk))] = m
		}
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("Values(%v, %v):\n got %v\nwant %v", asked, cols, got, want)
		}
	})
}
