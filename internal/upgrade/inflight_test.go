package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/internal/upgrade"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// losingTransport forwards requests, and once lose is set, forwards them
// and loses their answers: the server applied them, the device never
// knows.
type losingTransport struct{ lose atomic.Bool }

func (l *losingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && l.lose.Load() {
		resp.Body.Close()
		return nil, errors.New("réseau coupé pendant la réponse")
	}
	return resp, err
}

// TestUpgradeKeepsABatchInFlight: a device of the per-cell outbox (device
// migration 00071) whose batch reached the server but whose answer was
// lost opens with the per-row outbox (00072) and sends that batch again
// under the same id with the same changes: the server answers it from
// its record, nothing is applied twice, no conflict appears, and the
// device's outbox empties. The per-cell state is made by this version's
// own down migration, from a device that lost the answer.
func TestUpgradeKeepsABatchInFlight(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "claire@exemple.fr", "conseiller", password)
	tr := &losingTransport{}
	path := filepath.Join(t.TempDir(), "tablette.db")
	r, err := device.Open(ctx, path, device.Options{HTTPClient: &http.Client{Transport: tr}, RetryFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Login(ctx, srv.URL, "claire@exemple.fr", password); err != nil {
		t.Fatal(err)
	}
	a, b := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	exec := func(r *device.Replica, q string, args ...any) {
		t.Helper()
		if _, err := r.DB().ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(r, "INSERT INTO activite (id, type, duree, commune) VALUES (?, 'individuel', 30, 'Laval')", a)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Then an edit of a synced row (its prev is the acknowledged
	// version), a new row, and the answer lost.
	exec(r, "UPDATE activite SET duree = 45, notes = 'suite' WHERE id = ?", a)
	exec(r, "INSERT INTO activite (id, type, duree) VALUES (?, 'collectif', 120)", b)
	tr.lose.Store(true)
	if _, err := r.Sync(ctx); err == nil {
		t.Fatal("the sync whose answers are lost succeeded")
	}
	before, err := r.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batchBefore := batches(t, r)
	if len(before) != 5 || len(batchBefore) != 1 {
		t.Fatalf("before the downgrade: %d changes in %v, want 5 in one batch", len(before), batchBefore)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The same state in the per-cell outbox.
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := migrations.FS(migrations.Device)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.W, fsys, goose.WithTableName("_migrations_device"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 71); err != nil {
		t.Fatal(err)
	}
	var cells int
	if err := db.W.QueryRowContext(ctx, "SELECT COUNT(*) FROM _outbox WHERE col IS NOT NULL AND batch IS NOT NULL").Scan(&cells); err != nil || cells != 5 {
		t.Fatalf("per-cell outbox: %d cut entries (%v), want 5", cells, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	r, err = device.Open(ctx, path, device.Options{})
	if err != nil {
		t.Fatalf("open the device of the per-cell outbox: %v", err)
	}
	defer r.Close()
	after, err := r.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := jsonOf(t, before), jsonOf(t, after); a != b {
		t.Fatalf("the batch in flight changed through the conversion:\n%s\n%s", a, b)
	}
	if got := batches(t, r); len(got) != 1 || got[0] != batchBefore[0] {
		t.Fatalf("batch ids %v after the conversion, want %v", got, batchBefore)
	}
	seq := countRows(t, srv.DB().R, "SELECT seq FROM _replica")
	if err := r.Login(ctx, srv.URL, "claire@exemple.fr", password); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Sync(ctx)
	if err != nil {
		t.Fatalf("sync after the conversion: %v", err)
	}
	if n := countRows(t, r.DB(), "SELECT COUNT(*) FROM _outbox"); n != 0 || rep.Pushed != 5 {
		t.Fatalf("%d entries left, %d changes acknowledged; want 0 and 5", n, rep.Pushed)
	}
	if n := countRows(t, srv.DB().R, "SELECT seq FROM _replica"); n != seq {
		t.Fatalf("the server's sequence moved from %d to %d: the batch was applied again", seq, n)
	}
	if n := countRows(t, srv.DB().R, "SELECT COUNT(*) FROM _conflicts"); n != 0 {
		t.Fatalf("%d conflicts: a prev changed through the conversion", n)
	}
	for _, c := range before {
		cell, ok, err := relaistest.HeldCell(ctx, srv.DB().R, c.Table, c.PK, c.Column)
		if err != nil || !ok || cell.Version != c.Version {
			t.Errorf("server holds %s.%s of %s at %v (%v), want %v", c.Table, c.Column, c.PK, cell.Version, err, c.Version)
		}
	}
}

func batches(t *testing.T, r *device.Replica) []string {
	t.Helper()
	rows, err := upgrade.ReadRows(context.Background(), r.DB(), "SELECT DISTINCT batch FROM _outbox WHERE batch IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, row := range rows {
		out = append(out, row["batch"].(string))
	}
	return out
}

func jsonOf(t *testing.T, changes []syncproto.Change) string {
	t.Helper()
	b, err := json.Marshal(changes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
