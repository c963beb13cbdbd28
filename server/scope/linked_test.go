package scope

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// TestLinkedDatesFromThePage: for any accompaniments, anonymous
// participants and beneficiaries linked to any activities (deleted,
// re-created, relinked, linked to activities the replica does not hold,
// keys that are UUIDs and keys that are not), the dates linkedDates gives
// the rows of each page, taking the activities and links the page holds
// from its cells, are the dates read back row by row from the replica
// (replica.HeldRow): the activity each row holds, that activity's date as
// held, and for a beneficiary the activities of its live accompaniments.
// Cells are dropped at random before, as the pull drops a device's own,
// so that a page sometimes holds a row without its link or date.
func TestLinkedDatesFromThePage(t *testing.T) {
	acts := []string{"0192f1a0-0000-7000-8000-00000000a001", "0192f1a0-0000-7000-8000-00000000a002",
		"0192f1a0-0000-7000-8000-00000000a003", "activity-that-is-not-a-uuid", "0192f1a0-0000-7000-8000-00000000a0ff"}
	bens := []string{"0192f1a0-0000-7000-8000-00000000b001", "0192f1a0-0000-7000-8000-00000000b002"}
	days := []any{nil, "2025-01-10", "2025-03-01T09:30", "2025-06-30"}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		db, schema := openDomain(rt, t.TempDir())
		defer db.Close()
		rules := NewRules(schema)
		var hlc syncproto.Timestamp
		cell := func(table, pk, col string, val any) syncproto.Change {
			hlc++
			return syncproto.Change{Table: table, PK: pk, Column: col, Value: val, Version: syncproto.Version{HLC: hlc, Node: "n"}}
		}
		for range rapid.IntRange(1, 5).Draw(rt, "batches") {
			var changes []syncproto.Change
			for range rapid.IntRange(1, 20).Draw(rt, "changes") {
				tomb := int64(rapid.IntRange(0, 1).Draw(rt, "tombstone"))
				switch rapid.IntRange(0, 4).Draw(rt, "table") {
				case 0:
					pk := rapid.SampledFrom(acts[:4]).Draw(rt, "activite")
					if rapid.IntRange(0, 5).Draw(rt, "delete activity") == 0 {
						changes = append(changes, cell("activite", pk, syncproto.DeletedColumn, tomb))
					} else {
						changes = append(changes, cell("activite", pk, "date", rapid.SampledFrom(days).Draw(rt, "date")))
					}
				case 1, 2:
					table := rapid.SampledFrom([]string{"accompagnement", "participants_anonymes"}).Draw(rt, "linked table")
					pk := fmt.Sprintf("0192f1a0-0000-7000-8000-00000000c%03d", rapid.IntRange(0, 4).Draw(rt, "row"))
					if rapid.Bool().Draw(rt, "uuid") {
						pk = fmt.Sprintf("row-%d-that-is-not-a-uuid", rapid.IntRange(0, 1).Draw(rt, "row"))
					}
					switch rapid.IntRange(0, 5).Draw(rt, "linked column") {
					case 0:
						changes = append(changes, cell(table, pk, syncproto.DeletedColumn, tomb))
					case 1:
						if table == "accompagnement" {
							changes = append(changes, cell(table, pk, "beneficiaire_id", rapid.SampledFrom(append([]any{nil}, anySlice(bens)...)).Draw(rt, "beneficiaire")))
							break
						}
						fallthrough
					default:
						changes = append(changes, cell(table, pk, "activite_id", rapid.SampledFrom(append([]any{nil}, anySlice(acts)...)).Draw(rt, "activity")))
					}
				default:
					pk := rapid.SampledFrom(bens).Draw(rt, "beneficiaire")
					if rapid.IntRange(0, 5).Draw(rt, "delete beneficiary") == 0 {
						changes = append(changes, cell("beneficiaire", pk, syncproto.DeletedColumn, tomb))
					} else {
						changes = append(changes, cell("beneficiaire", pk, "nom", "x"))
					}
				}
			}
			applyChanges(rt, db, schema, changes, replica.Options{AssignSeq: true, Owners: rules.OwnerColumns()})
		}
		tx, err := db.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			rt.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // read-only
		limit := rapid.IntRange(1, 12).Draw(rt, "limit")
		for cursor, more, pages := int64(0), true, 0; more; pages++ {
			if pages > 1000 {
				rt.Fatal("pull does not end")
			}
			page, err := replica.ReadPage(ctx, tx, schema, cursor, limit, nil)
			if err != nil {
				rt.Fatal(err)
			}
			var changes []syncproto.Change
			for _, c := range page.Changes {
				if rapid.IntRange(0, 4).Draw(rt, "drop") > 0 {
					changes = append(changes, c)
				}
			}
			need := map[string][]string{}
			for _, c := range changes {
				if p := rules.policy(c.Table); p.team != nil && p.team.linked() && !slices.Contains(need[c.Table], c.PK) {
					need[c.Table] = append(need[c.Table], c.PK)
				}
			}
			got, err := rules.linkedDates(ctx, tx, need, rules.pageLinks(changes))
			if err != nil {
				rt.Fatal(err)
			}
			want := heldLinkedDates(rt, ctx, tx, schema, need)
			if !sameDates(got, want) {
				rt.Fatalf("page after %d (%v):\n from the page %v\n   row by row %v", cursor, keys(changes), got, want)
			}
			cursor, more = page.Cursor, page.More
		}
	})
}

// heldLinkedDates is the rule read row by row from the replica.
func heldLinkedDates(t *rapid.T, ctx context.Context, q Queryer, schema *syncproto.Schema, need map[string][]string) map[syncproto.RowKey][]string {
	held := func(table, pk string) map[string]replica.Cell {
		m, err := replica.HeldRow(ctx, q, schema, table, pk)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	dateOf := func(act string) (string, bool) {
		m := held("activite", act)
		if m == nil {
			return "", false
		}
		return text(m["date"].Value), true
	}
	out := map[syncproto.RowKey][]string{}
	for table, pks := range need {
		for _, pk := range pks {
			k := syncproto.RowKey{Table: table, PK: pk}
			var links []string
			if table == "beneficiaire" {
				rows, err := q.QueryContext(ctx, "SELECT activite_id FROM accompagnement WHERE beneficiaire_id = ? AND activite_id IS NOT NULL", pk)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var a string
					if err := rows.Scan(&a); err != nil {
						t.Fatal(err)
					}
					links = append(links, a)
				}
				rows.Close()
			} else if m := held(table, pk); m != nil {
				if a := text(m["activite_id"].Value); a != "" {
					links = append(links, a)
				}
			}
			for _, a := range links {
				if d, ok := dateOf(a); ok {
					out[k] = append(out[k], d)
				}
			}
		}
	}
	return out
}

func sameDates(a, b map[syncproto.RowKey][]string) bool {
	norm := func(m map[syncproto.RowKey][]string) map[syncproto.RowKey][]string {
		out := map[syncproto.RowKey][]string{}
		for k, v := range m {
			if len(v) > 0 {
				out[k] = slices.Sorted(slices.Values(v))
			}
		}
		return out
	}
	return maps.EqualFunc(norm(a), norm(b), slices.Equal[[]string])
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
