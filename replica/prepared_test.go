package replica_test

import (
	"context"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// TestPreparedSameState: applying batches with statements kept prepared
// across transactions leaves exactly the state that applying them without
// does, batch after batch (new rows, updates, deletes, re-creations).
func TestPreparedSameState(t *testing.T) { eachEngine(t, testPreparedSameState) }

func testPreparedSameState(t *testing.T, e *engine) {
	opt := serverOptions(e, replica.Options{})
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		plainDB, schema := openReplica(rt, e, dir, "plain")
		defer plainDB.Close()
		fastDB, _ := openReplica(rt, e, dir, "prepared")
		defer fastDB.Close()
		pre := replica.NewPrepared(fastDB.W)
		defer pre.Close()
		if err := pre.Warm(context.Background(), schema); err != nil {
			rt.Fatal(err)
		}
		batches := rapid.SliceOfN(rapid.SliceOfN(rapid.Custom(genChange), 1, 12), 1, 6).Draw(rt, "batches")
		for _, b := range batches {
			apply(rt, plainDB, schema, b, opt)
			fast := opt
			fast.Prepared = pre
			apply(rt, fastDB, schema, b, fast)
		}
		if a, b := dump(rt, plainDB), dump(rt, fastDB); a != b {
			rt.Fatalf("states differ:\n%s\n---\n%s", a, b)
		}
	})
}

// TestPreparedWarmCoversNewRows: warming twice is harmless, and a batch
// of new rows is written through the warmed statements.
func TestPreparedWarmCoversNewRows(t *testing.T) {
	dir := t.TempDir()
	db, schema := openReplica(t, &engine{name: "sqlite"}, dir, "r")
	defer db.Close()
	pre := replica.NewPrepared(db.W)
	defer pre.Close()
	ctx := context.Background()
	if err := pre.Warm(ctx, schema); err != nil {
		t.Fatal(err)
	}
	// Warm twice is harmless.
	if err := pre.Warm(ctx, schema); err != nil {
		t.Fatal(err)
	}
	ver := syncproto.Version{HLC: 10, Node: "n"}
	changes := []syncproto.Change{
		{Table: "activite", PK: rowIDs[0], Column: "type", Value: "individuel", Version: ver},
		{Table: "activite", PK: rowIDs[0], Column: "duree", Value: int64(45), Version: ver},
	}
	apply(t, db, schema, changes, replica.Options{Prepared: pre})
	var duree int64
	if err := db.W.QueryRow("SELECT duree FROM activite WHERE id = ?", rowIDs[0]).Scan(&duree); err != nil || duree != 45 {
		t.Fatalf("duree = %d, %v", duree, err)
	}
}
