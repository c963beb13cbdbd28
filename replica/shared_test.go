package replica_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// TestSharedWritersKeepEveryCell: servers merging into the same rows of
// one PostgreSQL database at once (Options.Shared), each transaction
// pausing between its decisions and its draw so that the others commit
// in between, end with the state one replica reaches applying the same
// batches one after the other; every row's number is its own, and no
// cell carries a number above its row's. Without the check of the
// records under the lock, a writer would write back the record it read
// before another's commit, and that commit's cells would be lost.
func TestSharedWritersKeepEveryCell(t *testing.T) {
	ctx := context.Background()
	e := &engine{name: "postgres", t: t, dbs: map[string]string{}}
	shared, schema := openPostgresReplica(t, e, "shared")
	defer shared.Close()
	// A second pool on the same database: another server.
	other, err := pgstore.Open(ctx, e.dbs["shared"], pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	const writers, batches = 4, 12
	ids := []string{rowIDs[0], rowIDs[1], "0192f1a0-0000-7000-8000-000000000003"}
	var clock atomic.Int64
	plans := make([][][]syncproto.Change, writers)
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		node := fmt.Sprintf("device-%d", w)
		for range batches {
			var b []syncproto.Change
			for range 1 + rng.IntN(5) {
				col := []string{"type", "duree", "notes", syncproto.DeletedColumn}[rng.IntN(4)]
				var val any = fmt.Sprintf("%s-%d", node, clock.Load())
				switch col {
				case "duree":
					val = int64(rng.IntN(100))
				case syncproto.DeletedColumn:
					val = int64(rng.IntN(2))
				}
				b = append(b, syncproto.Change{Table: "activite", PK: ids[rng.IntN(len(ids))], Column: col, Value: val,
					Version: syncproto.Version{HLC: syncproto.Timestamp(clock.Add(1)), Node: node}})
			}
			plans[w] = append(plans[w], b)
		}
	}

	var draws, applies atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		db := shared
		if w%2 == 1 {
			db = other
		}
		wg.Add(1)
		go func(w int, db *store.DB) {
			defer wg.Done()
			opt := replica.Options{AssignSeq: true, RecordConflicts: true, Shared: true,
				Draw: func(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
					draws.Add(1)
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) // the others commit meanwhile
					return pgstore.NextSeq(ctx, tx, n)
				}}
			for _, b := range plans[w] {
				err := db.Write(ctx, func(tx *sql.Tx) error {
					_, err := replica.Apply(ctx, tx, schema, b, opt)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				applies.Add(1)
			}
		}(w, db)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	ref, _ := openReplica(t, &engine{name: "sqlite"}, t.TempDir(), "ref")
	defer ref.Close()
	for _, p := range plans {
		for _, b := range p {
			apply(t, ref, schema, b, replica.Options{AssignSeq: true})
		}
	}
	if got, want := dump(t, shared), dump(t, ref); got != want {
		t.Fatalf("cells lost between writers:\nshared:\n%s\none by one:\n%s", got, want)
	}
	cells, err := relaistest.Cells(ctx, shared.R)
	if err != nil {
		t.Fatal(err)
	}
	rowSeq := map[string]int64{}
	for _, c := range cells {
		rowSeq[c.PK] = max(rowSeq[c.PK], c.Seq)
	}
	seen := map[int64]string{}
	for pk, s := range rowSeq {
		if o, dup := seen[s]; dup {
			t.Fatalf("rows %s and %s share number %d", pk, o, s)
		}
		seen[s] = pk
	}
	t.Logf("%d applies, %d draws (a draw beyond one per apply is a decision taken again, or a lock taken early)", applies.Load(), draws.Load())
}
