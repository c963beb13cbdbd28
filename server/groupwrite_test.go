package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/relais-numerique/relais/store"
)

// TestGroupWriter: many concurrent writes, some failing, one panicking,
// one whose request is gone: each gets its own verdict, and exactly the
// writes that succeeded are in the database.
func TestGroupWriter(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	g := newGroupWriter(db.W, 8)
	defer g.Close()

	const n = 200
	refused := errors.New("refused")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i == 13 {
				ctx = gone
			}
			errs[i] = g.Do(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec("INSERT INTO t (k) VALUES (?)", i); err != nil {
					return err
				}
				switch {
				case i == 77:
					panic("boom")
				case i%10 == 3:
					// Written, then refused: the write must not stay.
					return refused
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i == 13:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("write %d with its request gone: %v", i, err)
			}
		case i == 77:
			if err == nil {
				t.Errorf("write %d panicked and reported success", i)
			}
		case i%10 == 3:
			if !errors.Is(err, refused) {
				t.Errorf("write %d: %v, want its own refusal", i, err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			want++
		}
	}
	var got int
	var bad sql.NullInt64
	if err := db.R.QueryRow("SELECT COUNT(*), MAX(CASE WHEN k % 10 = 3 OR k = 77 OR k = 13 THEN k END) FROM t").Scan(&got, &bad); err != nil {
		t.Fatal(err)
	}
	if got != want || bad.Valid {
		t.Fatalf("table holds %d rows (a refused one: %v), want %d", got, bad, want)
	}
}

// TestGroupWriterClosed: a write submitted after Close is refused, not
// left waiting.
func TestGroupWriterClosed(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := newGroupWriter(db.W, 8)
	g.Close()
	err = g.Do(context.Background(), func(tx *sql.Tx) error { return fmt.Errorf("must not run") })
	if !errors.Is(err, errWriterClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
