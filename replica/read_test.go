package replica_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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
func TestReadOwnedProperty(t *testing.T) {
	owners := map[string]string{"activite": "mediateur_id"}
	people := []string{"ana", "ben", "chloe"}
	rapid.Check(t, func(rt *rapid.T) {
		db, schema := openReplica(rt, t.TempDir(), "owned")
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
			apply(rt, db, schema, changes, replica.Options{AssignSeq: true, Owners: owners})
		}
		ctx := context.Background()

		// Every activity cell is tagged with its row's owner.
		var stale int
		if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM _cells c WHERE tbl = 'activite' AND owner IS NOT
			(SELECT CAST(val AS TEXT) FROM _cells o WHERE o.tbl = c.tbl AND o.pk = c.pk AND o.col = 'mediateur_id')`).Scan(&stale); err != nil {
			rt.Fatal(err)
		}
		if stale != 0 {
			rt.Fatalf("%d cells carry a stale owner tag", stale)
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
			p, err := replica.ReadOwned(ctx, db.R, cursor, limit, want, nil)
			if err != nil {
				rt.Fatal(err)
			}
			if len(p.Changes) > limit {
				rt.Fatalf("page of %d cells, limit %d", len(p.Changes), limit)
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
		if !slices.Equal(got, expected) {
			rt.Fatalf("owners %q, limit %d:\n got %v\nwant %v", want, limit, got, expected)
		}
	})
}

// scanOwned is the reference: every cell in sequence order, kept when its
// tag (NULL as "") is among owners, written table/pk/column@tag.
func scanOwned(t tester, q *sql.DB, owners []string) []string {
	rows, err := q.Query("SELECT tbl, pk, col, COALESCE(owner, '') FROM _cells WHERE seq IS NOT NULL ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var tbl, pk, col, owner string
		if err := rows.Scan(&tbl, &pk, &col, &owner); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(owners, owner) {
			out = append(out, tbl+"/"+pk+"/"+col+"@"+owner)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
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
func TestTagOwnersBackfill(t *testing.T) {
	db, schema := openReplica(t, t.TempDir(), "backfill")
	defer db.Close()
	v := func(h int) syncproto.Version { return syncproto.Version{HLC: syncproto.Timestamp(h), Node: "n"} }
	apply(t, db, schema, []syncproto.Change{
		{Table: "activite", PK: "a1", Column: "notes", Value: "x", Version: v(1)},
		{Table: "activite", PK: "a1", Column: "mediateur_id", Value: "ana", Version: v(1)},
		{Table: "activite", PK: "a2", Column: "notes", Value: "y", Version: v(2)},
		{Table: "structure", PK: "s1", Column: "nom", Value: "z", Version: v(3)},
	}, replica.Options{AssignSeq: true})
	for i, want := range []int64{2, 0} {
		var n int64
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			var err error
			n, err = replica.TagOwners(context.Background(), tx, "activite", "mediateur_id")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("run %d tagged %d cells, want %d", i+1, n, want)
		}
	}
	var tagged string
	if err := db.R.QueryRow("SELECT group_concat(pk || ':' || col || '=' || COALESCE(owner, '-'), ' ') FROM (SELECT * FROM _cells ORDER BY seq)").Scan(&tagged); err != nil {
		t.Fatal(err)
	}
	if want := "a1:notes=ana a1:mediateur_id=ana a2:notes=- s1:nom=-"; tagged != want {
		t.Fatalf("tags: %s, want %s", tagged, want)
	}
}
