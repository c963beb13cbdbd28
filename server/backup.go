package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/store"
)

// ensureHistory gives a database its history identity the first time it
// is opened with this version.
func ensureHistory(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, "INSERT INTO _history (id, history) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", uuid.NewString()); err != nil {
		return fmt.Errorf("history identity: %w", err)
	}
	return nil
}

// history is the server's history identity and, after a restore, where
// it comes from: the parent history and the last sequence number the two
// share. Every exchange answer carries it.
type history struct {
	id, parent string
	sharedSeq  int64
}

// readHistory returns the database's history.
func readHistory(ctx context.Context, db *sql.DB) (history, error) {
	var h history
	var parent sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT history, parent, shared_seq FROM _history WHERE id = 1").Scan(&h.id, &parent, &h.sharedSeq); err != nil {
		return h, fmt.Errorf("history identity: %w", err)
	}
	h.parent = parent.String
	return h, nil
}

// History returns the identity of the server's history, which every
// exchange answer carries.
func (s *Server) History() string { return s.history.id }

// BackupInfo describes a backup file.
type BackupInfo struct {
	Path    string
	Bytes   int64
	History string // "" for a backup made before histories existed
	Seq     int64  // the newest pull sequence number it holds
}

// Backup writes a consistent copy of the data directory's database to
// to, which must not exist, while a server may be running: VACUUM INTO
// reads one snapshot of the database in a read transaction, so writes
// committed meanwhile are simply not in the copy, and the server is never
// blocked. The copy is then opened and checked with PRAGMA
// integrity_check.
func Backup(ctx context.Context, dataDir, to string) (BackupInfo, error) {
	src := DBPath(dataDir)
	if _, err := os.Stat(src); err != nil {
		return BackupInfo{}, fmt.Errorf("no server database in %s: %w", dataDir, err)
	}
	if _, err := os.Stat(to); err == nil {
		return BackupInfo{}, fmt.Errorf("%s already exists; a backup never overwrites a file", to)
	}
	db, err := sql.Open("sqlite3", "file:"+escapeDSN(src)+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", to); err != nil {
		_ = os.Remove(to) // a partial copy is no backup
		return BackupInfo{}, fmt.Errorf("backup of %s into %s: %w", src, to, err)
	}
	info, err := CheckBackup(ctx, to)
	if err != nil {
		return info, fmt.Errorf("the backup just written does not pass its check: %w", err)
	}
	return info, nil
}

// CheckBackup opens a backup file read-only, runs PRAGMA integrity_check
// on it and reads what it holds.
func CheckBackup(ctx context.Context, path string) (BackupInfo, error) {
	info := BackupInfo{Path: path}
	st, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("backup file: %w", err)
	}
	info.Bytes = st.Size()
	db, err := sql.Open("sqlite3", "file:"+escapeDSN(path)+"?mode=ro&immutable=1")
	if err != nil {
		return info, fmt.Errorf("open backup %s: %w", path, err)
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&verdict); err != nil {
		return info, fmt.Errorf("backup %s is not a readable database: %w", path, err)
	}
	if verdict != "ok" {
		return info, fmt.Errorf("backup %s is damaged: %s", path, verdict)
	}
	if err := db.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&info.Seq); err != nil {
		return info, fmt.Errorf("backup %s is not a Relais server database: %w", path, err)
	}
	if h, err := readHistory(ctx, db); err == nil {
		info.History = h.id
	}
	return info, nil
}

// RestoreInfo says what a restore did.
type RestoreInfo struct {
	Backup BackupInfo
	// History is the restored server's new history identity.
	History string
	// SetAside is where the database that was in the data directory was
	// moved ("" when there was none): a restore deletes nothing.
	SetAside string
}

// Restore replaces the data directory's database with a backup, while no
// server runs on it (it takes the data directory's lock, and refuses when
// a server holds it). The database it replaces is moved aside, not
// deleted. The restored database gets a new history identity, so that
// devices that synced after the backup send their own writes again and
// pull everything again, and a new node id for the server's own writes,
// so that none of them can carry a version the server already gave, before
// the backup was restored, to a different write.
func Restore(ctx context.Context, from, dataDir string, now time.Time) (RestoreInfo, error) {
	out := RestoreInfo{}
	lock, err := LockDataDir(dataDir)
	if err != nil {
		return out, err
	}
	defer lock.Release() //nolint:errcheck // released on exit anyway
	if out.Backup, err = CheckBackup(ctx, from); err != nil {
		return out, err
	}
	dst := DBPath(dataDir)
	if _, err := os.Stat(dst); err == nil {
		out.SetAside = fmt.Sprintf("%s.before-restore-%s", dst, now.UTC().Format("20060102T150405Z"))
		// The WAL and shared-memory files go with their database: the
		// WAL may hold its last commits.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(dst+suffix, out.SetAside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return out, fmt.Errorf("set the current database aside: %w", err)
			}
		}
	}
	if err := copyFile(from, dst); err != nil {
		return out, err
	}
	db, err := OpenDB(ctx, dataDir) // brings an older backup's schema up to date
	if err != nil {
		return out, err
	}
	defer db.Close()
	out.History, err = renewHistory(ctx, db, out.Backup.History, now)
	return out, err
}

// renewHistory gives a restored database a new history identity whose
// parent is the backup's, sharing with it every sequence number the
// database holds, and a new node id for the server's own writes.
func renewHistory(ctx context.Context, db *store.DB, parent string, now time.Time) (string, error) {
	id := uuid.NewString()
	node, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		// Every sequence number up to the backup's last is the same cell
		// in both histories; the restored server numbers on from there.
		if _, err := tx.ExecContext(ctx, `UPDATE _history SET history = ?, parent = ?, restored_at = ?,
			shared_seq = (SELECT seq FROM _replica WHERE id = 1) WHERE id = 1`,
			id, nullable(parent), now.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE _replica SET node = ? WHERE id = 1", node.String())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("restore: new history identity: %w", err)
	}
	return id, nil
}

// MarkRestored is the end of Restore for a database put back by other
// means: a PostgreSQL store restored with pg_restore, or recovered to a
// point in time. It must run before any server serves the restored
// database: it gives it a new history identity, child of the one it
// holds, so that devices that synced after the backup send their own
// writes again and pull what changed since it (as after Restore). It
// returns the new identity and the last sequence number the two share.
func MarkRestored(ctx context.Context, db *store.DB, now time.Time) (RestoreInfo, error) {
	var out RestoreInfo
	h, err := readHistory(ctx, db.R)
	if err != nil {
		return out, err
	}
	out.Backup = BackupInfo{Path: db.Path, History: h.id}
	if err := db.R.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&out.Backup.Seq); err != nil {
		return out, fmt.Errorf("restore: %w", err)
	}
	out.History, err = renewHistory(ctx, db, h.id, now)
	return out, err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// copyFile copies src to dst durably: a temporary file, synced, renamed.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".restore-*")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("restore: copy %s: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("restore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// escapeDSN keeps '?' and '#' in a file name from being read as the start
// of a DSN's query.
func escapeDSN(p string) string {
	return (&url.URL{Path: p}).EscapedPath()
}
