package device

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

// keptOnWipe are the tables a wipe leaves: the schema's bookkeeping and
// the device's identity and state, which then records the revocation.
//
// The table and column numbers stay too: the capture triggers name
// tables by them, and they hold nothing but the schema's names.
var keptOnWipe = map[string]bool{"_device": true, "_replica": true, "_tables": true, "_columns": true}

// wipeRevoked erases the replica after the server said this device was
// revoked: every row of every table (domain rows, cell versions, outbox,
// rejected changes, conflicts), the tokens and the link to the account;
// then the file is rebuilt (VACUUM) and the write-ahead log emptied, so
// that no free page or log frame still holds erased data. Writes not yet
// synced are lost: that is the point of a remote wipe. syncMu must be
// held. It returns cause, wrapped, or the wipe's own failure.
func (r *Replica) wipeRevoked(ctx context.Context, cause error) error {
	if err := r.wipe(ctx); err != nil {
		return errors.Join(cause, fmt.Errorf("wipe after revocation: %w", err))
	}
	return fmt.Errorf("this device was revoked; its local data has been erased: %w", cause)
}

func (r *Replica) wipe(ctx context.Context) error {
	r.access.forget()
	tables, err := r.wipeableTables(ctx)
	if err != nil {
		return err
	}
	// Triggers are silenced: deleting domain rows must not queue
	// tombstones for a server that no longer listens to us.
	err = r.applyLocal(ctx, func(tx *sql.Tx) error {
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+quoteIdent(t)); err != nil {
				return fmt.Errorf("erase %s: %w", t, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE _replica SET hlc = 0, seq = 0 WHERE id = 1"); err != nil {
			return fmt.Errorf("erase clock: %w", err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE _device SET server = NULL, email = NULL, user_id = NULL, access_token = NULL,
			refresh_token = NULL, cursor = 0, last_sync_at = NULL, last_error = ?, revoked_at = ? WHERE id = 1`,
			"appareil révoqué : données locales effacées", time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return err
	}
	// secure_delete zeroed the freed content; VACUUM rebuilds the file
	// without free pages, and the TRUNCATE checkpoint copies it back and
	// empties the log, which still held the old pages' images.
	if _, err := r.db.W.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var busy, logged, moved int
	if err := r.db.W.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpoint: a reader kept the log busy; erased data may remain in the log until the next open")
	}
	return nil
}

// wipeableTables lists every table but SQLite's own, the migration
// version tables and keptOnWipe.
func (r *Replica) wipeableTables(ctx context.Context) ([]string, error) {
	rows, err := r.db.W.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if strings.HasPrefix(n, "sqlite_") || strings.HasPrefix(n, "_migrations_") || keptOnWipe[n] {
			continue
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// isRevoked reports whether err is the server's order to wipe.
func isRevoked(err error) bool { return syncproto.CodeOf(err) == syncproto.CodeDeviceRevoked }
