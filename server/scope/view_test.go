package scope

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// TestFilterByTagsDecidesLikeLookups: for any cells (owners and dates
// changed, rows left untagged as a bulk writer leaves them, coordinations
// with and without periods) and any principal, filtering each page with
// the owner tags ReadOwned returns keeps exactly the cells filtering on
// the owner and date cells read back from _cells keeps, the rule as it
// stood before tags. The first batch is sometimes written untagged, as
// the demo's bulk writer writes brand-new rows before the server tags
// them; every later one goes through the merge with tags, as every
// server write does. Cells are also dropped at random before filtering,
// as the pull drops a device's own, so that a row's date is sometimes
// missing from the page.
func TestFilterByTagsDecidesLikeLookups(t *testing.T) {
	const me, m1, m2, other = "me", "m1", "m2", "other"
	// Weighted towards a coordinated team, so that most cases have
	// rows a coordinator sees in part.
	people := []any{nil, me, m1, m1, m2, other}
	days := []any{nil, "2025-01-10", "2025-03-01T09:30", "2025-06-30", "not a date"}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		db, schema := openDomain(rt, t.TempDir())
		defer db.Close()
		rules := NewRules(schema)
		tagged := replica.Options{AssignSeq: true, Owners: rules.OwnerColumns()}
		untagged := replica.Options{AssignSeq: true}
		var hlc syncproto.Timestamp
		cell := func(table, pk, col string, val any) syncproto.Change {
			hlc++
			return syncproto.Change{Table: table, PK: pk, Column: col, Value: val, Version: syncproto.Version{HLC: hlc, Node: "n"}}
		}
		for b := range rapid.IntRange(1, 5).Draw(rt, "batches") {
			var changes []syncproto.Change
			for range rapid.IntRange(1, 25).Draw(rt, "changes") {
				switch rapid.IntRange(0, 5).Draw(rt, "kind") {
				case 0:
					pk := fmt.Sprintf("c%d", rapid.IntRange(0, 2).Draw(rt, "coordination"))
					col := rapid.SampledFrom([]string{"coordinateur_id", "mediateur_id", "debut", "fin"}).Draw(rt, "coordination column")
					val := rapid.SampledFrom([]any{me, me, other, nil}).Draw(rt, "coordinator")
					if col == "mediateur_id" {
						val = rapid.SampledFrom(people).Draw(rt, "member")
					}
					if col == "debut" || col == "fin" {
						val = rapid.SampledFrom(days).Draw(rt, "bound")
					}
					changes = append(changes, cell("coordination", pk, col, val))
				case 1:
					pk := fmt.Sprintf("b%d", rapid.IntRange(0, 3).Draw(rt, "beneficiaire"))
					col := rapid.SampledFrom([]string{"mediateur_id", "nom", "genre"}).Draw(rt, "beneficiaire column")
					var val any = "x"
					if col == "mediateur_id" {
						val = rapid.SampledFrom(people).Draw(rt, "owner")
					}
					changes = append(changes, cell("beneficiaire", pk, col, val))
				default:
					pk := fmt.Sprintf("a%d", rapid.IntRange(0, 6).Draw(rt, "activite"))
					col := rapid.SampledFrom([]string{"mediateur_id", "date", "notes", "type"}).Draw(rt, "activite column")
					var val any = "x"
					switch col {
					case "mediateur_id":
						val = rapid.SampledFrom(people).Draw(rt, "owner")
					case "date":
						val = rapid.SampledFrom(days).Draw(rt, "date")
					}
					changes = append(changes, cell("activite", pk, col, val))
				}
			}
			opt := tagged
			if b == 0 && rapid.Bool().Draw(rt, "bulk") {
				opt = untagged
			}
			applyChanges(rt, db, schema, changes, opt)
		}
		who := Who{UserID: me, Role: rapid.SampledFrom([]string{RoleConseiller, RoleCoordinateur}).Draw(rt, "role")}
		limit := rapid.IntRange(1, 8).Draw(rt, "limit")
		tx, err := db.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			rt.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // read-only
		view, err := rules.Load(ctx, tx, who)
		if err != nil {
			rt.Fatal(err)
		}
		// Every owner, so that untagged cells and other people's are
		// read too and the filter, not the read, is what is tested.
		owners := []string{"", me, m1, m2, other}
		for cursor, more, pages := int64(0), true, 0; more; pages++ {
			if pages > 1000 {
				rt.Fatal("pull does not end")
			}
			page, err := replica.ReadOwned(ctx, tx, schema, cursor, limit, owners, nil)
			if err != nil {
				rt.Fatal(err)
			}
			var changes []syncproto.Change
			var tags []string
			for i, c := range page.Changes {
				if rapid.IntRange(0, 4).Draw(rt, "drop") > 0 {
					changes = append(changes, c)
					tags = append(tags, page.Owners[i])
				}
			}
			got, err := view.Filter(ctx, tx, slices.Clone(changes), tags)
			if err != nil {
				rt.Fatal(err)
			}
			want, err := view.Filter(ctx, tx, slices.Clone(changes), nil)
			if err != nil {
				rt.Fatal(err)
			}
			if !slices.EqualFunc(got, want, func(a, b syncproto.Change) bool { return a.Table == b.Table && a.PK == b.PK && a.Column == b.Column }) {
				rt.Fatalf("%s %s, page after %d:\n with tags %v\nlooked up %v", who.Role, who.UserID, cursor, keys(got), keys(want))
			}
			cursor, more = page.Cursor, page.More
		}
	})
}

func keys(changes []syncproto.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Table + "/" + c.PK + "/" + c.Column
	}
	return out
}

func openDomain(t *rapid.T, dir string) (*store.DB, *syncproto.Schema) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(dir, "scope.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, db.W, migrations.Replica, migrations.Domain); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Init(ctx, db.W); err != nil {
		t.Fatal(err)
	}
	schema, err := replica.LoadSchema(ctx, db.W)
	if err != nil {
		t.Fatal(err)
	}
	return db, schema
}

func applyChanges(t *rapid.T, db *store.DB, schema *syncproto.Schema, changes []syncproto.Change, opt replica.Options) {
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := replica.Apply(context.Background(), tx, schema, changes, opt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
