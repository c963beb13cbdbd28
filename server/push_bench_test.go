package server_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

// BenchmarkPush measures the server's push path: Server.Exchange on a real
// server and store (synchronous=FULL, every check and rule), one batch of
// new activities per operation, as a conseiller's device sends them after
// a day offline. HTTP and the wire decoding are left out: they are
// measured by `relais bench ingest`.
//
// Besides ns/op (wall time, which on a shared machine includes waiting
// for the disk and for other processes), it reports the process's own CPU
// time per cell (cpu-ns/cell), the figure to compare between runs:
//
//	go test -run '^$' -bench BenchmarkPush -count 6 ./server/
//
// On PostgreSQL (engine=postgres, the throw-away cluster of pgtest or
// RELAIS_TEST_PG) the database's own CPU is in its processes, not in
// cpu-ns/cell: compare ns/op there.
func BenchmarkPush(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, activities := range []int{100, 500} {
			b.Run(fmt.Sprintf("engine=%s/activities=%d", engine, activities), func(b *testing.B) {
				cfg := server.Config{}
				if engine == "postgres" {
					cfg.Store = pgtest.DB(b)
				}
				benchmarkPush(b, cfg, activities)
			})
		}
	}
}

func benchmarkPush(b *testing.B, cfg server.Config, perBatch int) {
	ctx := context.Background()
	srv := relaistest.StartServer(b, cfg)
	user := srv.AddUser(b, "bench@exemple.fr", auth.RoleConseiller, password)
	p := auth.Principal{UserID: user.ID, DeviceID: uuid.Must(uuid.NewV7()).String(), Role: auth.RoleConseiller}
	clock := syncproto.NewClock(time.Now, 0, 0)

	// Batches are made before the timer starts, so that the CPU measured
	// is the server's.
	batches := make([]*syncproto.Batch, b.N)
	cells := 0
	for i := range batches {
		batches[i] = activityBatch(clock, p, perBatch)
		cells += len(batches[i].Changes)
	}
	var cursor int64
	if cfg.Store != "" {
		// A running database has statistics (autovacuum analyses a table
		// within a minute of its first rows): without them PostgreSQL
		// reads a batch's version records by scanning the table's index
		// on tbl, a cost that grows with the table (docs/DESIGN.md,
		// hazards). Two batches, then the statistics.
		for range 2 {
			warm := activityBatch(clock, p, perBatch)
			if _, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: warm, Clock: clock.Now()}); err != nil {
				b.Fatalf("push: %v", err)
			}
		}
		if _, err := srv.DB().W.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu0 := processCPU(b)
	for _, batch := range batches {
		resp, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: batch, Cursor: cursor, Clock: clock.Now()})
		if err != nil {
			b.Fatalf("push: %v", err)
		}
		if resp.Ack != batch.ID || resp.Applied != len(batch.Changes) {
			b.Fatalf("push: ack %q applied %d, want %q and %d", resp.Ack, resp.Applied, batch.ID, len(batch.Changes))
		}
		cursor = resp.Cursor
	}
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(cells), "cpu-ns/cell")
	b.ReportMetric(float64(cells)/float64(b.N), "cells/op")
}

// activityBatch is one batch of perBatch new activities of p's user, each
// written whole (ten cells), with values that satisfy the domain's rules.
func activityBatch(clock *syncproto.Clock, p auth.Principal, perBatch int) *syncproto.Batch {
	b := &syncproto.Batch{ID: uuid.Must(uuid.NewV7()).String()}
	for range perBatch {
		id := uuid.Must(uuid.NewV7()).String()
		ver := syncproto.Version{HLC: clock.Now(), Node: p.DeviceID}
		for _, cell := range []struct {
			col string
			val any
		}{
			{"mediateur_id", p.UserID},
			{"type", "individuel"},
			{"date", "2026-11-20"},
			{"duree", int64(45)},
			{"type_lieu", "domicile"},
			{"commune", "Laval"},
			{"code_insee", "53130"},
			{"autonomie", "partiellement_autonome"},
			{"thematiques", `["diagnostic_numerique"]`},
			{"notes", "première visite, prise en main de la tablette"},
		} {
			b.Changes = append(b.Changes, syncproto.Change{Table: "activite", PK: id, Column: cell.col, Value: cell.val, Version: ver})
		}
	}
	return b
}

// processCPU is the user and system time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
