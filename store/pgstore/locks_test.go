package pgstore

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/store"
)

func twoServers(t *testing.T) (one, two *store.DB) {
	t.Helper()
	url := pgtest.DB(t)
	open := func() *store.DB {
		db, err := Open(context.Background(), url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return open(), open()
}

// TestLockKey: two servers locking the same device's key run one after
// the other; another device's key does not wait.
func TestLockKey(t *testing.T) {
	ctx := context.Background()
	one, two := twoServers(t)
	tx1, err := one.W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := LockKey(ctx, tx1, "device-a"); err != nil {
		t.Fatal(err)
	}
	other := make(chan error, 1)
	go func() {
		other <- two.Write(ctx, func(tx *sql.Tx) error { return LockKey(ctx, tx, "device-b") })
	}()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another device's lock waited")
	}
	same := make(chan error, 1)
	go func() {
		same <- two.Write(ctx, func(tx *sql.Tx) error { return LockKey(ctx, tx, "device-a") })
	}()
	select {
	case err := <-same:
		t.Fatalf("the same device's lock did not wait (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-same; err != nil {
		t.Fatal(err)
	}
}

// TestTryJob: one server at a time runs a job; the lock is free again
// once released, and once the holder's connection dies (a server killed
// during the job).
func TestTryJob(t *testing.T) {
	ctx := context.Background()
	one, two := twoServers(t)
	release, ok, err := TryJob(ctx, one.W, "retention")
	if err != nil || !ok {
		t.Fatalf("first server: ok %v, %v", ok, err)
	}
	if _, ok, err := TryJob(ctx, two.W, "retention"); err != nil || ok {
		t.Fatalf("second server while the first runs: ok %v, %v", ok, err)
	}
	if r, ok, err := TryJob(ctx, two.W, "another job"); err != nil || !ok {
		t.Fatalf("another job: ok %v, %v", ok, err)
	} else {
		r()
	}
	release()
	release2, ok, err := TryJob(ctx, two.W, "retention")
	if err != nil || !ok {
		t.Fatalf("after release: ok %v, %v", ok, err)
	}
	// The holder dies: its backend is terminated as if its server had
	// been killed.
	if _, err := one.W.ExecContext(ctx, `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		r, ok, err := TryJob(ctx, one.W, "retention")
		if err == nil && ok {
			r()
			break
		}
		if i == 100 {
			t.Fatalf("the lock of a dead server's job was never freed: ok %v, %v", ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	release2() // on a dead connection: must not hang or panic
}
