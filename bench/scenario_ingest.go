package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// Scenario "ingest": a device pushes N activities, against inserting
// the same rows into SQLite directly (the floor).

func runIngest(ctx context.Context, cfg Config) (*Result, error) {
	n := cfg.size(10000)
	res := &Result{}
	r, err := newRig(cfg, "ingest")
	if err != nil {
		return nil, err
	}
	defer r.close()
	userID, structures, err := r.conseiller(ctx, "ingest@bench.relais")
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx, "ingest"); err != nil {
		return nil, err
	}
	d, err := r.openDevice(ctx, "tablet", "ingest@bench.relais")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rows := generateFor(cfg.Seed, n, now(), userID, structures)

	cfg.logf("  capturing %d activities on the device", n)
	m, err := r.begin()
	if err != nil {
		return nil, err
	}
	if err := insertRows(ctx, d.DB(), d.Schema(), rows); err != nil {
		return nil, err
	}
	capture, err := m.end("device: local writes (SQL + capture)", n)
	if err != nil {
		return nil, err
	}

	cfg.logf("  pushing")
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	rep, err := syncAll(ctx, d)
	if err != nil {
		return nil, err
	}
	push, err := m.end("relais: push to server", n)
	if err != nil {
		return nil, err
	}
	push.Extra = map[string]float64{"cells": float64(rep.Pushed), "body_bytes_up": float64(rep.BytesUp)}

	cfg.logf("  raw SQLite")
	raw, err := rawInsert(ctx, filepath.Join(r.dir, "raw.db"), rows, n)
	if err != nil {
		return nil, err
	}
	push.Extra["ratio_vs_raw"] = push.PerSecond / raw.PerSecond
	// Wall times move with whatever else the machine runs; CPU times are
	// each process's own. Relais's CPU is the server's and the device's
	// together, raw SQLite's is the insert's.
	if relaisCPU := push.ServerCPU + push.DeviceCPU; relaisCPU > 0 && raw.DeviceCPU > 0 {
		push.Extra["cpu_ratio_vs_raw"] = raw.DeviceCPU.Seconds() / relaisCPU.Seconds()
	}

	// The device's local writes against the raw insert of the same rows,
	// by CPU: the "device local writes >= 25 % of raw SQLite".
	if capture.DeviceCPU > 0 {
		capture.Extra = map[string]float64{"cpu_ratio_vs_raw": raw.DeviceCPU.Seconds() / capture.DeviceCPU.Seconds()}
	}

	// An application writes an activity when the conseillère saves it:
	// one transaction (and one durable commit) per activity, each
	// statement prepared anew (its triggers compiled in with it), on a
	// device and on plain SQLite. Fewer rows: each commit waits for
	// its fsync.
	each := min(n, 2000)
	cfg.logf("  %d activities, one transaction each, device and raw SQLite", each)
	appDev, err := appDevice(ctx, filepath.Join(r.dir, "app.db"), userID)
	if err != nil {
		return nil, err
	}
	defer appDev.Close()
	devEach, err := timeInserts(ctx, "device: local writes, one transaction per activity", appDev.DB(), appDev.Schema(), rows[:each])
	if err != nil {
		return nil, err
	}
	rawDB, err := store.Open(filepath.Join(r.dir, "raw-each.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	defer rawDB.Close()
	if err := migrations.Up(ctx, rawDB.W, migrations.Domain); err != nil {
		return nil, err
	}
	rawSchema, err := loadSchema(ctx, rawDB.W)
	if err != nil {
		return nil, err
	}
	rawEach, err := timeInserts(ctx, "raw SQLite: one transaction per activity", rawDB.W, rawSchema, rows[:each])
	if err != nil {
		return nil, err
	}
	if devEach.DeviceCPU > 0 {
		devEach.Extra = map[string]float64{"cpu_ratio_vs_raw": rawEach.DeviceCPU.Seconds() / devEach.DeviceCPU.Seconds()}
	}
	// The same with Exec, as most applications write (database/sql
	// prepares the statement each time; the device's driver keeps it
	// prepared, store.Options.StatementCache).
	appExec, err := appDevice(ctx, filepath.Join(r.dir, "app-exec.db"), userID)
	if err != nil {
		return nil, err
	}
	defer appExec.Close()
	devExec, err := timeInsertsExec(ctx, "device: local writes, one transaction per activity, Exec", appExec.DB(), appExec.Schema(), rows[:each])
	if err != nil {
		return nil, err
	}
	if devExec.DeviceCPU > 0 {
		devExec.Extra = map[string]float64{"cpu_ratio_vs_raw": rawEach.DeviceCPU.Seconds() / devExec.DeviceCPU.Seconds()}
	}
	// The same with the statement prepared once: what compiling the
	// table's triggers into each statement costs the pattern above.
	appKept, err := appDevice(ctx, filepath.Join(r.dir, "app-kept.db"), userID)
	if err != nil {
		return nil, err
	}
	defer appKept.Close()
	devKept, err := timeInsertsPrepared(ctx, "device: local writes, one transaction per activity, statement kept prepared", appKept.DB(), appKept.Schema(), rows[:each])
	if err != nil {
		return nil, err
	}

	cfg.logf("  a day's work")
	day := generateFor(cfg.Seed+7, 20, time.Now().Add(-time.Minute), userID, structures)
	if err := insertRows(ctx, d.DB(), d.Schema(), day); err != nil {
		return nil, err
	}
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	drep, err := syncAll(ctx, d)
	if err != nil {
		return nil, err
	}
	dayRow, err := m.end("relais: a day's work (20 activities)", 20)
	if err != nil {
		return nil, err
	}
	dayRow.Extra = map[string]float64{"cells": float64(drep.Pushed), "body_bytes_up": float64(drep.BytesUp)}
	res.Rows = append(res.Rows, capture, push, raw, devEach, rawEach, devExec, devKept, dayRow)
	res.Notes = append(res.Notes,
		"ratio_vs_raw = Relais push rate / raw SQLite insert rate of the same rows (target >= 0.5); cpu_ratio_vs_raw = raw SQLite's CPU time / Relais's (server + device), the same comparison without the machine's load",
		"a day's work: bytes up on TCP include HTTP headers; body_bytes_up is the gzip body alone (target < 2 KB)",
		"local writes: cpu_ratio_vs_raw = raw SQLite's CPU / the device's for the same rows written the same way (target >= 0.25); one transaction per activity is how an application saves, each statement prepared anew")
	return res, nil
}

// appDevice opens a fresh replica holding her account as a login would
// leave it, so that the write-time owner checks run as on her tablet.
func appDevice(ctx context.Context, path, userID string) (*device.Replica, error) {
	d, err := device.Open(ctx, path, device.Options{})
	if err != nil {
		return nil, err
	}
	if _, err := d.DB().ExecContext(ctx, "UPDATE _device SET user_id = ?, role = 'conseiller' WHERE id = 1", userID); err != nil {
		d.Close()
		return nil, fmt.Errorf("bench device %s: %w", path, err)
	}
	return d, nil
}

// rawInsert inserts the rows into a fresh SQLite database with the same
// durability settings as the server (WAL, synchronous=FULL), in one
// transaction: the floor Relais ingest is compared with.
func rawInsert(ctx context.Context, path string, rows []row, n int) (Row, error) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return Row{}, err
	}
	defer db.Close()
	if err := migrations.Up(ctx, db.W, migrations.Domain); err != nil {
		return Row{}, err
	}
	schema, err := loadSchema(ctx, db.W)
	if err != nil {
		return Row{}, err
	}
	before, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	start := time.Now()
	if err := insertRows(ctx, db.W, schema, rows); err != nil {
		return Row{}, err
	}
	wall := time.Since(start)
	after, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	// The insert runs in this process: its CPU time is the device column.
	return Row{Name: "raw SQLite: one transaction", Activities: n, Wall: wall, PerSecond: float64(n) / wall.Seconds(),
		DeviceCPU: after.CPU - before.CPU}, nil
}

// timeInserts writes rows into db one transaction per row, each INSERT
// prepared anew, as an application saving one activity at a time does,
// and measures this process's CPU.
func timeInserts(ctx context.Context, name string, db *sql.DB, schema *syncproto.Schema, rows []row) (Row, error) {
	return timeWrites(name, rows, func(rw row) error { return insertRows(ctx, db, schema, []row{rw}) })
}

// timeInsertsExec writes rows into db one transaction per row, each
// INSERT run with Exec (database/sql prepares, runs and closes it; a
// driver with a statement cache finds it prepared the second time), and
// measures this process's CPU.
func timeInsertsExec(ctx context.Context, name string, db *sql.DB, schema *syncproto.Schema, rows []row) (Row, error) {
	return timeWrites(name, rows, func(rw row) error {
		q, args, ok := insertOf(schema, rw)
		if !ok {
			return nil
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			tx.Rollback() //nolint:errcheck // the insert's error is the one to report
			return fmt.Errorf("insert %s %s: %w", rw.Table, rw.ID, err)
		}
		return tx.Commit()
	})
}

// timeInsertsPrepared writes rows into db one transaction per row, with
// one statement per table prepared once, and measures this process's CPU.
func timeInsertsPrepared(ctx context.Context, name string, db *sql.DB, schema *syncproto.Schema, rows []row) (Row, error) {
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	return timeWrites(name, rows, func(rw row) error {
		q, args, ok := insertOf(schema, rw)
		if !ok {
			return nil
		}
		st, ok := stmts[q]
		if !ok {
			var err error
			if st, err = db.PrepareContext(ctx, q); err != nil {
				return fmt.Errorf("insert rows into %s: %w", rw.Table, err)
			}
			stmts[q] = st
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			tx.Rollback() //nolint:errcheck // the insert's error is the one to report
			return fmt.Errorf("insert %s %s: %w", rw.Table, rw.ID, err)
		}
		return tx.Commit()
	})
}

// insertOf is the INSERT of a row naming every column of its table, and
// its arguments; false for a table schema does not have.
func insertOf(schema *syncproto.Schema, rw row) (string, []any, bool) {
	t := schema.Tables[rw.Table]
	if t == nil {
		return "", nil, false
	}
	cols := t.ColumnNames()
	q := fmt.Sprintf(`INSERT INTO %q (id, "%s") VALUES (?%s)`, rw.Table, strings.Join(cols, `", "`), strings.Repeat(", ?", len(cols)))
	args := []any{rw.ID}
	for _, c := range cols {
		args = append(args, rw.Values[c])
	}
	return q, args, true
}

// timeWrites runs write for each row and measures this process's CPU.
func timeWrites(name string, rows []row, write func(row) error) (Row, error) {
	before, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	start := time.Now()
	for _, rw := range rows {
		if err := write(rw); err != nil {
			return Row{}, err
		}
	}
	wall := time.Since(start)
	after, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	return Row{Name: name, Activities: len(rows), Wall: wall, PerSecond: float64(len(rows)) / wall.Seconds(),
		DeviceCPU: after.CPU - before.CPU}, nil
}
