package device_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
)

// The local writes of `relais bench ingest` (issue 13, "device local
// writes >= 25 % of raw SQLite by CPU"), reproducible with go test:
//
//	go test -run '^$' -bench LocalInserts -benchtime 10x ./client-sdk/device/
//
// Each op inserts the same 10,000 activities, shaped as the bench's (a
// logged-in conseillère's own rows, lists of themes and equipment), in
// one transaction with one prepared statement, then rolls it back, so
// every op writes into the same replica. cpu-ms/op is the process's CPU
// time (user + system) per op, the figure the bench compares; ns/op is
// wall time and moves with the machine's load. BenchmarkLocalInserts/raw
// is plain SQLite (the domain tables, no trigger) with the server's
// settings, as the bench's raw row: the ratio of the two cpu-ms/op is
// the bench's cpu_ratio_vs_raw.

const localInsertRows = 10000

func BenchmarkLocalInserts(b *testing.B) {
	ctx := context.Background()
	const user = "0192f1a0-0000-7000-8000-0000000000aa"
	rows := benchActivities(localInsertRows, user)
	b.Run("device", func(b *testing.B) {
		r, err := device.Open(ctx, filepath.Join(b.TempDir(), "d.db"), device.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		// Her account as a login leaves it: the owner checks run.
		if _, err := r.DB().ExecContext(ctx, "UPDATE _device SET user_id = ?, role = 'conseiller' WHERE id = 1", user); err != nil {
			b.Fatal(err)
		}
		runInserts(b, r.DB(), rows)
	})
	b.Run("raw", func(b *testing.B) {
		db, err := store.Open(filepath.Join(b.TempDir(), "raw.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := migrations.Up(ctx, db.W, migrations.Domain); err != nil {
			b.Fatal(err)
		}
		runInserts(b, db.W, rows)
	})
}

// benchActivity is one activity: column -> value, id included.
type benchActivity map[string]any

// benchActivities makes n valid activities of user, always the same.
func benchActivities(n int, user string) []benchActivity {
	rng := rand.New(rand.NewPCG(13, 13))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	uuidOf := func(i, kind int) string {
		return fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", rng.Uint32(), i&0xffff, kind, rng.IntN(0x1000), rng.Uint64()&0xffffffffffff)
	}
	structures := []string{uuidOf(1, 1), uuidOf(2, 1), uuidOf(3, 1)}
	end := time.Now()
	out := make([]benchActivity, n)
	for i := range out {
		at := end.AddDate(0, 0, -rng.IntN(730))
		typ, dur := "individuel", []int64{15, 30, 45, 60, 90}[rng.IntN(5)]
		if rng.IntN(10) == 0 {
			typ, dur = "collectif", 120
		}
		v := map[string]any{"mediateur_id": user, "date": at.Format("2006-01-02"), "type": typ, "duree": dur,
			"autonomie": pick("entierement_accompagne", "partiellement_autonome", "autonome")}
		switch p := rng.IntN(10); {
		case p < 6 || typ == "collectif":
			v["type_lieu"], v["structure_id"] = "lieu_activite", structures[rng.IntN(len(structures))]
		case p < 9:
			v["type_lieu"], v["commune"], v["code_insee"], v["code_postal"] = "domicile", "Laval", "53130", "53000"
		default:
			v["type_lieu"] = "a_distance"
		}
		if rng.IntN(3) == 0 {
			v["notes"] = "Première prise en main de la tablette."
		}
		v["materiel"] = `["` + pick("ordinateur", "telephone", "tablette", "autre", "aucun") + `"]`
		if rng.IntN(2) == 0 {
			v["thematiques"] = `["aide_aux_demarches_administratives","` + pick("logement", "argent_impots", "social_sante", "justice") + `"]`
			if rng.IntN(4) == 0 {
				v["precisions_demarche"] = "Dossier CAF"
			}
		} else {
			v["thematiques"] = `["` + pick("email", "navigation_sur_internet", "bureautique", "sante") + `"]`
		}
		v["id"] = uuidOf(i, 2)
		out[i] = v
	}
	return out
}

// runInserts inserts rows into db in one transaction per op, rolled
// back. As the bench, the statement names every column of the table.
func runInserts(b *testing.B, db *sql.DB, rows []benchActivity) {
	ctx := context.Background()
	cols := relaistest.Strings(b, db, "SELECT name FROM pragma_table_info('activite') ORDER BY cid")
	args := make([][]any, len(rows))
	for i, rw := range rows {
		for _, c := range cols {
			args[i] = append(args[i], rw[c])
		}
	}
	q := fmt.Sprintf(`INSERT INTO activite ("%s") VALUES (?%s)`, strings.Join(cols, `", "`), strings.Repeat(", ?", len(cols)-1))
	var cpu, least time.Duration
	b.ResetTimer()
	for b.Loop() {
		before := cpuTime(b)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range args {
			if _, err := st.ExecContext(ctx, a...); err != nil {
				b.Fatalf("insert %v: %v", a, err)
			}
		}
		st.Close()
		took := cpuTime(b) - before
		cpu += took
		if least == 0 || took < least {
			least = took
		}
		if err := tx.Rollback(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	// The least of the ops: other processes on the same cores slow
	// every op's CPU time too (shared caches), some more than others.
	b.ReportMetric(float64(least.Microseconds())/1000, "min-cpu-ms")
}

// cpuTime is this process's CPU time, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
