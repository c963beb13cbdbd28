package server

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// The push path's queries answer the same through statements prepared
// before the transaction as they do as plain queries in it, and a query
// that was not prepared still runs.
func TestPreparedTxAnswersLikeThePlainTransaction(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	schema, err := replica.LoadSchema(ctx, db.W)
	if err != nil {
		t.Fatal(err)
	}
	const (
		act   = "01928a10-0000-7000-8000-000000000001"
		owner = "01928a10-0000-7000-8000-0000000000aa"
	)
	// One activity that breaks a rule (duree 0), so that the rules'
	// query has something to find.
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := replica.Apply(ctx, tx, schema, []syncproto.Change{
			{Table: "activite", PK: act, Column: "mediateur_id", Value: owner, Version: syncproto.Version{HLC: 1, Node: "n"}},
			{Table: "activite", PK: act, Column: "duree", Value: int64(0), Version: syncproto.Version{HLC: 1, Node: "n"}},
		}, replica.Options{AssignSeq: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, "INSERT INTO _batches (device_id, id, received_at, response) VALUES ('d', 'b', 1, '{}')"); err != nil {
		t.Fatal(err)
	}
	var st pushStatements
	if err := st.warm(ctx, db.W, schema, true); err != nil {
		t.Fatal(err)
	}
	rulesQuery := ""
	for _, q := range domain.CheckQueries(schema) {
		if len(q) > len(rulesQuery) {
			rulesQuery = q // the longest: the activity table's, with most rules
		}
	}
	cases := []struct {
		name     string
		query    string
		args     []any
		prepared bool
	}{
		{"batch answer", batchAnswerSQL, []any{"d", "b"}, true},
		{"no batch answer", batchAnswerSQL, []any{"d", "other"}, true},
		{"refused batch", batchRefusedSQL, []any{"d", "b"}, true},
		{"scope's held rows", scope.PushQueries()[0], []any{"activite", `["` + act + `"]`}, true},
		{"rules", rulesQuery, []any{`["` + act + `"]`}, true},
		{"a query not prepared", "SELECT id, duree FROM activite WHERE id = ?", []any{act}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := st.m[c.query]; ok != c.prepared {
				t.Fatalf("prepared: %v, want %v", ok, c.prepared)
			}
			var plain, viaPrepared string
			err := db.Write(ctx, func(tx *sql.Tx) error {
				var err error
				if plain, err = dumpQuery(ctx, tx, c.query, c.args); err != nil {
					return err
				}
				viaPrepared, err = dumpQuery(ctx, st.in(tx), c.query, c.args)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if plain != viaPrepared {
				t.Fatalf("plain query: %s\nprepared: %s", plain, viaPrepared)
			}
		})
	}
}

// Warming again for the same schema prepares nothing new; a new schema
// (a reload makes a new Schema) gets a new set of statements, without
// touching the map that transactions begun earlier may still read.
func TestPushStatementsWarmOncePerSchema(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	first, err := replica.LoadSchema(ctx, db.W)
	if err != nil {
		t.Fatal(err)
	}
	var st pushStatements
	if err := st.warm(ctx, db.W, first, true); err != nil {
		t.Fatal(err)
	}
	before := st.m
	if err := st.warm(ctx, db.W, first, true); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%p", st.m) != fmt.Sprintf("%p", before) {
		t.Fatal("warming again for the same schema made a new set of statements")
	}
	second, err := replica.LoadSchema(ctx, db.W)
	if err != nil {
		t.Fatal(err)
	}
	n := len(before)
	if err := st.warm(ctx, db.W, second, true); err != nil {
		t.Fatal(err)
	}
	if st.schema != second || len(before) != n || fmt.Sprintf("%p", st.m) == fmt.Sprintf("%p", before) {
		t.Fatal("a new schema did not get a new set of statements, or the old set was changed")
	}
}

func dumpQuery(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any) (string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	out := ""
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		out += fmt.Sprintf("%v\n", vals)
	}
	return out, rows.Err()
}

// Only changes to rows the server held before the batch can need
// re-announcing; when the held rows are not known, every change is
// passed on.
func TestOnHeldRows(t *testing.T) {
	a := syncproto.Change{Table: "activite", PK: "a", Column: "date"}
	a2 := syncproto.Change{Table: "activite", PK: "a", Column: "mediateur_id"}
	b := syncproto.Change{Table: "activite", PK: "b", Column: "date"}
	other := syncproto.Change{Table: "beneficiaire", PK: "a", Column: "nom"}
	all := []syncproto.Change{a, b, a2, other}
	cases := []struct {
		name string
		held scope.HeldRows
		want []syncproto.Change
	}{
		{"not known", nil, all},
		{"all new", scope.HeldRows{}, nil},
		{"one held", scope.HeldRows{{Table: "activite", PK: "a"}: true}, []syncproto.Change{a, a2}},
		{"same key in another table", scope.HeldRows{{Table: "beneficiaire", PK: "a"}: true}, []syncproto.Change{other}},
		{"all held", scope.HeldRows{{Table: "activite", PK: "a"}: true, {Table: "activite", PK: "b"}: true, {Table: "beneficiaire", PK: "a"}: true}, all},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := onHeldRows(scope.NewRules(&syncproto.Schema{}), all, c.held); !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// The pull after a push starts past the batch only when the device's
// cursor is right below the batch's cells and the pull is not a resync.
func TestPullFrom(t *testing.T) {
	cases := []struct {
		name   string
		cursor int64
		resync bool
		own    seqRange
		want   int64
	}{
		{"no batch applied", 40, false, seqRange{}, 40},
		{"caught up", 40, false, seqRange{from: 40, to: 1040}, 1040},
		{"behind", 39, false, seqRange{from: 40, to: 1040}, 39},
		{"cursor from elsewhere", 2000, false, seqRange{from: 40, to: 1040}, 2000},
		{"resync", 40, true, seqRange{from: 40, to: 1040}, 40},
		{"nothing won", 40, false, seqRange{from: 40, to: 40}, 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &syncproto.SyncRequest{Cursor: c.cursor, Resync: c.resync}
			if got := pullFrom(req, c.own); got != c.want {
				t.Fatalf("pull from %d, want %d", got, c.want)
			}
		})
	}
}
