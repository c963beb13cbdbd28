package server

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/store/pgstore"
)

// TestRetentionRunsOnOneServerAtATime: on PostgreSQL the daily retention
// job runs on one server at a time. While another server holds the
// job's lock, a server's run skips and anonymises nothing; once the lock
// is free, its run anonymises the beneficiary left untouched for longer
// than the retention period.
func TestRetentionRunsOnOneServerAtATime(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(ctx, Config{Store: pgtest.DB(t), Now: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const id = "01928a10-0000-7000-8000-000000000001"
	if err := s.WriteRow(ctx, "beneficiaire", id, map[string]any{"anonyme": int64(0), "prenom": "Camille", "nom": "Martin"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(400 * 24 * time.Hour)
	mu.Unlock()

	release, ok, err := pgstore.TryJob(ctx, s.db.W, "retention") // another server's run
	if err != nil || !ok {
		t.Fatalf("take the job's lock: %v %v", ok, err)
	}
	n, err := s.runRetentionOnce(ctx, 365*24*time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("while another server runs the job: anonymised %d (%v), want 0", n, err)
	}
	var prenom any
	if err := s.db.R.QueryRowContext(ctx, "SELECT prenom FROM beneficiaire WHERE id = ?", id).Scan(&prenom); err != nil || prenom != "Camille" {
		t.Fatalf("prenom %v (%v) while the job ran elsewhere", prenom, err)
	}
	release()
	if n, err = s.runRetentionOnce(ctx, 365*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("with the job free: anonymised %d (%v), want 1", n, err)
	}
	if err := s.db.R.QueryRowContext(ctx, "SELECT prenom FROM beneficiaire WHERE id = ?", id).Scan(&prenom); err != nil || prenom != nil {
		t.Fatalf("prenom %v (%v) after the retention job", prenom, err)
	}
}
