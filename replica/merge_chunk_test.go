package replica_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// manyRowIDs are enough rows for a batch to fill the merge's multi-row
// chunks (cellChunks, rowChunks) several times over.
var manyRowIDs = func() []string {
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("0192f1a0-0000-7000-8000-%012d", i)
	}
	return ids
}()

func genChangeMany(t *rapid.T) syncproto.Change {
	c := genChange(t)
	c.PK = rapid.SampledFrom(manyRowIDs).Draw(t, "pk")
	return c
}

// TestApplyChunkedSameAsOneByOne: a large batch, written with multi-row
// statements (the same cell possibly twice in one statement, new rows
// and held rows, tombstones, re-creations), leaves exactly the state and
// the counts that applying its changes one at a time does, on the
// server's options (sequence numbers, conflicts, owners) as on a
// device's.
func TestApplyChunkedSameAsOneByOne(t *testing.T) {
	cases := []struct {
		name string
		opt  replica.Options
	}{
		{"device", replica.Options{}},
		{"server", replica.Options{AssignSeq: true, RecordConflicts: true, Owners: map[string]string{"activite": "type"}}},
	}
	eachEngine(t, func(t *testing.T, e *engine) {
		for _, tc := range cases {
			if e.postgres() && !tc.opt.AssignSeq {
				continue // devices keep SQLite
			}
			if tc.opt.AssignSeq {
				tc.opt.Shared = e.postgres()
			}
			t.Run(tc.name, func(t *testing.T) {
				rapid.Check(t, func(rt *rapid.T) {
					dir, err := os.MkdirTemp("", "relais-chunk-*")
					if err != nil {
						rt.Fatal(err)
					}
					defer os.RemoveAll(dir)
					whole, schema := openReplica(rt, e, dir, "whole")
					defer whole.Close()
					single, _ := openReplica(rt, e, dir, "single")
					defer single.Close()
					// Some rows held before, so that the batch meets both new
					// rows and rows to update.
					before := rapid.SliceOfN(rapid.Custom(genChangeMany), 0, 40).Draw(rt, "before")
					// On PostgreSQL every one-by-one Apply is a dozen round
					// trips: smaller batches (still several chunks of records
					// and rows) keep the test's time near SQLite's.
					most := 400
					if e.postgres() {
						most = 160
					}
					batch := rapid.SliceOfN(rapid.Custom(genChangeMany), 100, most).Draw(rt, "batch")
					for _, db := range []*store.DB{whole, single} {
						if len(before) > 0 {
							apply(rt, db, schema, before, tc.opt)
						}
					}
					got := apply(rt, whole, schema, batch, tc.opt)
					// One Apply per change, in one transaction: a commit each
					// would make the test slow for nothing.
					var want replica.Result
					err = single.Write(context.Background(), func(tx *sql.Tx) error {
						for _, c := range batch {
							r, err := replica.Apply(context.Background(), tx, schema, []syncproto.Change{c}, tc.opt)
							if err != nil {
								return err
							}
							want.Won += r.Won
							want.Lost += r.Lost
							want.Duplicates += r.Duplicates
							want.KeptAside += r.KeptAside
							want.Conflicts = append(want.Conflicts, r.Conflicts...)
						}
						return nil
					})
					if err != nil {
						rt.Fatal(err)
					}
					if got.Won != want.Won || got.Lost != want.Lost || got.Duplicates != want.Duplicates || len(got.Conflicts) != len(want.Conflicts) {
						rt.Fatalf("counts differ: whole batch %+v, one by one %+v", got, want)
					}
					// Sequence numbers are given per row and per Apply, so
					// they differ between the two; the rest must not.
					queries := []string{
						"SELECT id, type, duree, notes FROM activite ORDER BY id",
						"SELECT tbl, pk, col, winner_val, winner_hlc, winner_node, loser_val, loser_hlc, loser_node FROM _conflicts ORDER BY tbl, pk, col, loser_hlc, loser_node",
					}
					a := relaistest.Dump(rt, whole.W, queries...) + relaistest.CellsText(rt, whole.W, false, true)
					b := relaistest.Dump(rt, single.W, queries...) + relaistest.CellsText(rt, single.W, false, true)
					if a != b {
						rt.Fatalf("states differ:\n%s\n---\n%s", a, b)
					}
				})
			})
		}
	})
}

// TestApplyUntaggedSameAsTagged: options that number rows and record
// owners only for tables a batch never touches leave exactly the state
// a device's options (none) do: values, versions, no sequence, no owner,
// including on rows held before with a sequence number and an owner
// (written with the server's options), which both keep.
func TestApplyUntaggedSameAsTagged(t *testing.T) {
	server := replica.Options{AssignSeq: true, Owners: map[string]string{"activite": "type"}}
	tagged := replica.Options{Owners: map[string]string{"no_such_table": "owner"}}
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "relais-untagged-*")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		// Devices' options: SQLite only.
		untaggedDB, schema := openReplica(rt, &engine{name: "sqlite"}, dir, "untagged")
		defer untaggedDB.Close()
		taggedDB, _ := openReplica(rt, &engine{name: "sqlite"}, dir, "tagged")
		defer taggedDB.Close()
		before := rapid.SliceOfN(rapid.Custom(genChangeMany), 0, 60).Draw(rt, "before")
		batch := rapid.SliceOfN(rapid.Custom(genChangeMany), 1, 400).Draw(rt, "batch")
		for _, db := range []*store.DB{untaggedDB, taggedDB} {
			if len(before) > 0 {
				apply(rt, db, schema, before, server)
			}
		}
		got := apply(rt, untaggedDB, schema, batch, replica.Options{})
		want := apply(rt, taggedDB, schema, batch, tagged)
		if got.Won != want.Won || got.Lost != want.Lost || got.Duplicates != want.Duplicates || got.KeptAside != want.KeptAside {
			rt.Fatalf("counts differ: untagged %+v, tagged %+v", got, want)
		}
		queries := []string{"SELECT id, type, typeof(type), duree, typeof(duree), notes FROM activite ORDER BY id"}
		a := relaistest.Dump(rt, untaggedDB.W, queries...) + relaistest.CellsText(rt, untaggedDB.W, true, true)
		b := relaistest.Dump(rt, taggedDB.W, queries...) + relaistest.CellsText(rt, taggedDB.W, true, true)
		if a != b {
			rt.Fatalf("states differ:\n%s\n---\n%s", a, b)
		}
	})
}
