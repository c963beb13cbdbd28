package device

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/syncproto"
)

// TestBatchStaysUnderTheProtocolLimit: a batch is extended to whole rows
// after it is cut, which can carry it past syncproto.MaxBatchChanges (the
// server would refuse it whole). Here the first entries each start a row
// whose other columns were written much later: a cut of 1,000 entries
// would extend to 4,000 and one of 2,000 to 8,000. The batch must stay
// under the limit, keep its rows whole, and the outbox still hold the
// rest.
func TestBatchStaysUnderTheProtocolLimit(t *testing.T) {
	ctx := context.Background()
	r, err := Open(ctx, filepath.Join(t.TempDir(), "d.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const rows = 2000
	ids := make([]string, rows)
	tx, err := r.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		if _, err := tx.Exec("INSERT INTO structure (id, nom) VALUES (?, ?)", ids[i], fmt.Sprint("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if _, err := tx.Exec("UPDATE structure SET adresse = 'rue', commune = 'Laval', code_postal = '53000' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1000, 2000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			b, pending, err := r.nextBatch(ctx, nil, size)
			if err != nil {
				t.Fatal(err)
			}
			if b == nil || len(b.Changes) == 0 || len(b.Changes) > syncproto.MaxBatchChanges {
				t.Fatalf("batch of %d changes (limit %d)", batchLen(b), syncproto.MaxBatchChanges)
			}
			perRow := map[string]int{}
			for _, c := range b.Changes {
				perRow[c.PK]++
			}
			for pk, n := range perRow {
				if n != 4 {
					t.Fatalf("row %s travels with %d of its 4 cells", pk, n)
				}
			}
			if pending != 4*rows {
				t.Fatalf("outbox holds %d entries, want %d", pending, 4*rows)
			}
			// Set the batch aside so the next size cuts afresh.
			if _, err := r.DB().Exec("UPDATE _outbox SET batch = NULL"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func batchLen(b *syncproto.Batch) int {
	if b == nil {
		return 0
	}
	return len(b.Changes)
}
