package server_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// Backups taken while devices push open and pass PRAGMA
// integrity_check, hold a prefix of what was pushed (whole batches: no
// row without its cells), and carry the server's history.
func TestBackupUnderConcurrentPushes(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "camille@exemple.fr", "admin", password)
	const devices, rounds = 3, 12
	devs := make([]*device.Replica, devices)
	for i := range devs {
		devs[i] = srv.LoggedInDevice(t, fmt.Sprintf("d%d", i), "camille@exemple.fr", password)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for _, d := range devs {
		wg.Add(1)
		go func(d *device.Replica) {
			defer wg.Done()
			for range rounds {
				for range 20 {
					if _, err := d.DB().Exec("INSERT INTO activite (id, type, duree, commune) VALUES (?, 'individuel', 30, 'Laval')", newID()); err != nil {
						errs <- err
						return
					}
				}
				if _, err := d.Sync(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(d)
	}
	var backups []server.BackupInfo
	dir := t.TempDir()
	for i := 0; i < 4; i++ {
		info, err := server.Backup(ctx, srv.DataDir, filepath.Join(dir, fmt.Sprintf("b%d.db", i)))
		if err != nil {
			t.Fatalf("backup %d while devices push: %v", i, err)
		}
		backups = append(backups, info)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("device: %v", err)
	}
	for i, b := range backups {
		info, err := server.CheckBackup(ctx, b.Path)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		if info.History != srv.History() || info.History == "" {
			t.Errorf("backup %d carries history %q, the server %q", i, info.History, srv.History())
		}
		db, err := sql.Open("sqlite3", "file:"+b.Path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var rows, partial int
		if err := db.QueryRow("SELECT count(*) FROM activite").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT count(*) FROM activite WHERE type IS NULL OR duree IS NULL OR commune IS NULL").Scan(&partial); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if partial != 0 || rows%20 != 0 {
			t.Errorf("backup %d holds %d rows, %d of them partial: not whole batches", i, rows, partial)
		}
		if i > 0 && info.Seq < backups[i-1].Seq {
			t.Errorf("backup %d is older (seq %d) than backup %d (seq %d)", i, info.Seq, i-1, backups[i-1].Seq)
		}
	}
	if last, final := backups[len(backups)-1].Seq, count(t, srv.DB().R, "SELECT seq FROM _replica"); int64(final) < last {
		t.Errorf("last backup at seq %d, server at %d", last, final)
	}
}

// A restore refuses a directory a server holds, and a file that is not a
// Relais database; it sets the replaced database aside and gives the
// restored one a new history.
func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	relaistest.StartServer(t, server.Config{DataDir: data})
	backup := filepath.Join(t.TempDir(), "b.db")
	info, err := server.Backup(ctx, data, backup)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := server.LockDataDir(data) // as relais serve does
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Restore(ctx, backup, data, time.Now()); !errors.Is(err, server.ErrDataDirBusy) {
		t.Fatalf("restore into a held directory: %v", err)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(t.TempDir(), "x.db")
	if _, err := server.Backup(ctx, t.TempDir(), notDB); err == nil {
		t.Fatal("backup of a directory without a database succeeded")
	}
	if _, err := server.Restore(ctx, filepath.Join(t.TempDir(), "absent.db"), t.TempDir(), time.Now()); err == nil {
		t.Fatal("restore from a missing file succeeded")
	}
	other := t.TempDir()
	res, err := server.Restore(ctx, backup, other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.History == "" || res.History == info.History || res.SetAside != "" {
		t.Fatalf("restore into an empty directory: %+v (backup history %s)", res, info.History)
	}
}
