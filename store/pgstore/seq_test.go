package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/store"
)

// pullOrderDB is the smallest shape of the problem: a counter, and
// changes each stamped with a sequence number that pulls read by.
func pullOrderDB(t *testing.T) (one, two *store.DB) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.DB(t)
	open := func() *store.DB {
		db, err := Open(ctx, url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	one, two = open(), open()
	for _, q := range []string{
		"CREATE TABLE _replica (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL)",
		"INSERT INTO _replica VALUES (1, 0)",
		"CREATE SEQUENCE naive_seq",
		"CREATE TABLE changes (seq BIGINT PRIMARY KEY, what TEXT NOT NULL)",
	} {
		if _, err := one.W.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return one, two
}

type allocator func(ctx context.Context, tx *sql.Tx, n int64) (int64, error)

// naive draws numbers from a PostgreSQL SEQUENCE: what a first port
// would do, and wrong.
func naive(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
	var first int64
	err := tx.QueryRowContext(ctx, "SELECT nextval('naive_seq')").Scan(&first)
	for i := int64(1); i < n && err == nil; i++ {
		err = tx.QueryRowContext(ctx, "SELECT nextval('naive_seq')").Scan(new(int64))
	}
	return first, err
}

// puller is a device: it reads the changes above its cursor, in
// sequence order, and moves its cursor to the last one it read.
type puller struct {
	db     *store.DB
	cursor int64
	got    []string
}

func (p *puller) pull(t *testing.T) {
	t.Helper()
	// t.Error, not t.Fatal: pulls also run on a goroutine of their own.
	rows, err := p.db.R.Query("SELECT seq, what FROM changes WHERE seq > ? ORDER BY seq", p.cursor)
	if err != nil {
		t.Error(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var what string
		if err := rows.Scan(&p.cursor, &what); err != nil {
			t.Error(err)
			return
		}
		p.got = append(p.got, what)
	}
	if err := rows.Err(); err != nil {
		t.Error(err)
	}
}

// write is one server's push: reserve numbers, write the changes, then
// wait for hold (a slow merge, a slow disk) before committing.
func write(ctx context.Context, db *store.DB, alloc allocator, whats []string, reserved chan<- struct{}, hold <-chan struct{}) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		first, err := alloc(ctx, tx, int64(len(whats)))
		if err != nil {
			return err
		}
		if reserved != nil {
			close(reserved)
		}
		for i, w := range whats {
			if _, err := tx.ExecContext(ctx, "INSERT INTO changes (seq, what) VALUES (?, ?)", first+int64(i), w); err != nil {
				return err
			}
		}
		if hold != nil {
			<-hold
		}
		return nil
	})
}

// TestPullOrder: server one reserves its numbers and is slow to commit;
// server two, meanwhile, writes and commits; a device pulls in between,
// then again once both committed. It must end with every change. With a
// SEQUENCE it does not (the test shows the problem is real and caught);
// with NextSeq, server two waits for server one, and nothing is missed.
func TestPullOrder(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		alloc     allocator
		wantsLoss bool
	}{
		{"sequence", naive, true},
		{"NextSeq", NextSeq, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, two := pullOrderDB(t)
			dev := &puller{db: one}
			reserved, hold := make(chan struct{}), make(chan struct{})
			oneDone, twoDone := make(chan error, 1), make(chan error, 1)
			go func() { oneDone <- write(ctx, one, tc.alloc, []string{"one-a", "one-b"}, reserved, hold) }()
			<-reserved
			go func() { twoDone <- write(ctx, two, tc.alloc, []string{"two-a"}, nil, nil) }()
			// Give server two the time to commit if it can.
			select {
			case err := <-twoDone:
				if err != nil {
					t.Fatal(err)
				}
				twoDone <- nil
			case <-time.After(300 * time.Millisecond):
			}
			dev.pull(t) // in between
			close(hold)
			if err := <-oneDone; err != nil {
				t.Fatal(err)
			}
			if err := <-twoDone; err != nil {
				t.Fatal(err)
			}
			dev.pull(t)
			slices.Sort(dev.got)
			complete := slices.Equal(dev.got, []string{"one-a", "one-b", "two-a"})
			if complete == tc.wantsLoss {
				t.Fatalf("the device received %v (cursor %d); a loss was expected: %v", dev.got, dev.cursor, tc.wantsLoss)
			}
		})
	}
}

// TestPullOrderUnderLoad: two servers, several writers each, random
// delays between reserving numbers and committing, some transactions
// rolled back, and devices pulling all along: every committed change
// reaches every device, once.
func TestPullOrderUnderLoad(t *testing.T) {
	ctx := context.Background()
	one, two := pullOrderDB(t)
	const writers, pushes = 6, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed []string
	for w := range writers {
		db := []*store.DB{one, two}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 15))
			for p := range pushes {
				whats := make([]string, 1+rng.IntN(3))
				for i := range whats {
					whats[i] = fmt.Sprintf("w%d-p%d-%d", w, p, i)
				}
				hold := make(chan struct{})
				delay := time.Duration(rng.IntN(20)) * time.Millisecond
				time.AfterFunc(delay, func() { close(hold) })
				abort := rng.IntN(5) == 0
				alloc := NextSeq
				if abort {
					alloc = func(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
						first, err := NextSeq(ctx, tx, n)
						if err == nil {
							err = errRollback
						}
						return first, err
					}
				}
				err := write(ctx, db, alloc, whats, nil, hold)
				if abort {
					if err != errRollback {
						t.Errorf("rolled-back push: %v", err)
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed = append(committed, whats...)
				mu.Unlock()
			}
		}()
	}
	devices := []*puller{{db: one}, {db: two}}
	stop := make(chan struct{})
	pulled := make(chan struct{})
	go func() {
		defer close(pulled)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for _, d := range devices {
				d.pull(t)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-pulled
	slices.Sort(committed)
	for i, d := range devices {
		d.pull(t)
		slices.Sort(d.got)
		if !slices.Equal(d.got, committed) {
			t.Errorf("device %d received %d changes, %d were committed", i, len(d.got), len(committed))
		}
	}
}

var errRollback = fmt.Errorf("rolled back on purpose")
