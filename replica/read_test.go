package replica_test

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/internal/relaistest"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// TestReadOwnedProperty checks the owner index against a plain scan: for
// any writes (owner changes included) and any set of owners, paging
// through ReadOwned gives exactly the cells a full scan by sequence gives
// for those owners, in the same order, with the tag each was read by, and
// every cell carries its row's current owner as tag. perQuery varies how
// many owners SQLite merges in one query, so that the merge of several
// such streams is exercised too.
func TestReadOwnedProperty(t *testing.T) { eachEngine(t, testReadOwnedProperty) }

func testReadOwnedProperty(t *testing.T, e *engine) {
	owners := map[string]string{"activite": "mediateur_id"}
	people := []string{"ana", "ben", "chloe"}
	rapid.Check(t, func(rt *rapid.T) {
		db, schema := openReplica(rt, e, t.TempDir(), "owned")
		defer db.Close()
		var hlc syncproto.Timestamp
		batches := rapid.IntRange(1, 6).Draw(rt, "batches")
		for b := range batches {
			var changes []syncproto.Change
			for range rapid.IntRange(1, 12).Draw(rt, "changes") {
				hlc++
				v := syncproto.Version{HLC: hlc, Node: "n"}
				if rapid.IntRange(0, 4).Draw(rt, "kind") == 0 {
					id := fmt.Sprintf("s%d", rapid.IntRange(0, 3).Draw(rt, "structure"))
					changes = append(changes, syncproto.Change{Table: "structure", PK: id, Column: "nom", Value: "x", Version: v})
					continue
				}
				id := fmt.Sprintf("a%d", rapid.IntRange(0, 7).Draw(rt, "activite"))
				col := rapid.SampledFrom([]string{"mediateur_id", "notes", "type"}).Draw(rt, "column")
				var val any = fmt.Sprintf("v%d", b)
				if col == "mediateur_id" {
					val = rapid.SampledFrom(append([]any{nil}, anySlice(people)...)).Draw(rt, "owner")
				}
				changes = append(changes, syncproto.Change{Table: "activite", PK: id, Column: col, Value: val, Version: v})
			}
			apply(rt, db, schema, changes, serverOptions(e, replica.Options{Owners: owners}))
		}
		ctx := context.Background()

		// Every activity row records its owner cell's value.
		cells, err := relaistest.Cells(ctx, db.R)
		if err != nil {
			rt.Fatal(err)
		}
		for _, c := range cells {
			if c.Table == "activite" && c.Column == "mediateur_id" && c.Owner != relaistest.Text(c.Value) {
				rt.Fatalf("row %s records owner %q, its owner cell says %v", c.PK, c.Owner, c.Value)
			}
		}

		want := rapid.SliceOfDistinct(rapid.SampledFrom(append([]string{""}, people...)), func(s string) string { return s }).Draw(rt, "readers")
		limit := rapid.IntRange(1, 9).Draw(rt, "limit")
		defer replica.SetOwnersPerQuery(rapid.IntRange(1, 4).Draw(rt, "perQuery"))()
		expected := scanOwned(rt, db.R, want)
		var got []string
		cursor := int64(0)
		for pages := 0; ; pages++ {
			if pages > 1000 {
				rt.Fatal("ReadOwned does not end")
			}
			p, err := replica.ReadOwned(ctx, db.R, schema, cursor, limit, want, nil)
			if err != nil {
				rt.Fatal(err)
			}
			// A page stops at the first row that reaches the limit: a
			// row's cells are never split across pages.
			if n := len(p.Changes); n > limit {
				last := p.Changes[n-1].Row()
				inLast := 0
				for _, c := range p.Changes {
					if c.Row() == last {
						inLast++
					}
				}
				if n-inLast >= limit {
					rt.Fatalf("page of %d cells, limit %d, its last row %d", n, limit, inLast)
				}
			}
			if len(p.Owners) != len(p.Changes) {
				rt.Fatalf("%d owners for %d cells", len(p.Owners), len(p.Changes))
			}
			for i, c := range p.Changes {
				got = append(got, c.Table+"/"+c.PK+"/"+c.Column+"@"+p.Owners[i])
			}
			if p.Cursor < cursor {
				rt.Fatalf("cursor went back from %d to %d", cursor, p.Cursor)
			}
			cursor = p.Cursor
			if !p.More {
				break
			}
		}
		// Rows come in sequence order; a row's cells in the order its
		// columns were numbered, which the reference does not know.
		slices.Sort(got)
		slices.Sort(expected)
		if !slices.Equal(got, expected) {
			rt.Fatalf("owners %q, limit %d:\n got %v\nwant %v", want, limit, got, expected)
		}
	})
}

// scanOwned is the reference: every cell held with a sequence number,
// kept when its row's owner ("" for none) is among owners, written
// table/pk/column@owner.
func scanOwned(t tester, q *sql.DB, owners []string) []string {
	cells, err := relaistest.Cells(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cells {
		if c.Seq > 0 && slices.Contains(owners, c.Owner) {
			out = append(out, c.Table+"/"+c.PK+"/"+c.Column+"@"+c.Owner)
		}
	}
	return out
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestTagOwnersBackfill: cells written without tags (an older database, a
// bulk writer) get them from TagOwners, and a second run finds nothing.
func TestTagOwnersBackfill(t *testing.T) { eachEngine(t, testTagOwnersBackfill) }

func testTagOwnersBackfill(t *testing.T, e *engine) {
	db, schema := openReplica(t, e, t.TempDir(), "backfill")
	defer db.Close()
	v := func(h int) syncproto.Version { return syncproto.Version{HLC: syncproto.Timestamp(h), Node: "n"} }
	apply(t, db, schema, []syncproto.Change{
		{Table: "activite", PK: "a1", Column: "notes", Value: "x", Version: v(1)},
		{Table: "activite", PK: "a1", Column: "mediateur_id", Value: "ana", Version: v(1)},
		{Table: "activite", PK: "a2", Column: "notes", Value: "y", Version: v(2)},
		{Table: "structure", PK: "s1", Column: "nom", Value: "z", Version: v(3)},
	}, serverOptions(e, replica.Options{}))
	for i, want := range []int64{1, 0} {
		var n int64
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			var err error
			n, err = replica.TagOwners(context.Background(), tx, schema, "activite", "mediateur_id")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("run %d tagged %d rows, want %d", i+1, n, want)
		}
	}
	cells, err := relaistest.Cells(context.Background(), db.R)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, c := range cells {
		owner := c.Owner
		if owner == "" {
			owner = "-"
		}
		tags = append(tags, c.PK+":"+c.Column+"="+owner)
	}
	tagged := strings.Join(tags, " ")
	if want := "a1:mediateur_id=ana a1:notes=ana a2:notes=- s1:nom=-"; tagged != want {
		t.Fatalf("tags: %s, want %s", tagged, want)
	}
}
