package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// DefaultRetention is how long a beneficiary may go without any update
// before the retention job anonymises it (the Coop's privacy policy).
const DefaultRetention = 365 * 24 * time.Hour

// EraseBeneficiaire anonymises a beneficiary as the server: its personal
// cells are cleared and anonyme set through the merge engine, so the
// erasure reaches every replica at its next pull (where the device's
// triggers also clear the values from its outbox, rejected changes and
// cell store); the addresses of its appointments are cleared the same
// way, and the server's conflict log loses its personal values.
func (s *Server) EraseBeneficiaire(ctx context.Context, id string) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM beneficiaire WHERE id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return syncproto.Errorf(syncproto.CodeNotFound, "no beneficiaire %q", id)
		}
		if err != nil {
			return fmt.Errorf("erase beneficiaire %s: %w", id, err)
		}
		return s.eraseTx(ctx, tx, id)
	})
	if err != nil {
		return err
	}
	return s.purgeLog(ctx)
}

// purgeLog copies the write-ahead log into the database file and empties
// it. secure_delete zeroes what an erasure frees in the pages, but the
// log still holds the images of those pages as they were before, with
// the erased values, until it is checkpointed and truncated: erasure is
// not done while any file holds them. A reader in the middle of a read
// (in this process or in the server, for an admin run) keeps the log
// busy; the checkpoint is retried for a few seconds.
//
// On PostgreSQL there is no such file to empty here: the old row
// versions stay in the tables until (auto)vacuum reclaims them, and the
// write-ahead log and its archives are the database operators' (README,
// deployment notes).
func (s *Server) purgeLog(ctx context.Context) error {
	if s.db.Engine == store.Postgres {
		return nil
	}
	for attempt := 0; ; attempt++ {
		var busy, logged, moved int
		if err := s.db.W.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil {
			return fmt.Errorf("empty the write-ahead log after an erasure: %w", err)
		}
		if busy == 0 {
			return nil
		}
		if attempt == purgeAttempts {
			return errors.New("the erasure is recorded, but readers kept the write-ahead log busy: " +
				"erased values may remain in relais.db-wal until the next erasure or a restart")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// purgeAttempts bounds purgeLog's retries, 100 ms apart.
const purgeAttempts = 50

func (s *Server) eraseTx(ctx context.Context, tx *sql.Tx, id string) error {
	if err := s.WriteRowTx(ctx, tx, "beneficiaire", id, domain.ErasureValues()); err != nil {
		return fmt.Errorf("erase beneficiaire %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT id FROM rendez_vous WHERE beneficiaire_id = ? AND adresse IS NOT NULL", id)
	if err != nil {
		return fmt.Errorf("erase beneficiaire %s: appointments: %w", id, err)
	}
	var rdvs []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return fmt.Errorf("erase beneficiaire %s: appointments: %w", id, err)
		}
		rdvs = append(rdvs, r)
	}
	rows.Close()
	for _, r := range rdvs {
		if err := s.WriteRowTx(ctx, tx, "rendez_vous", r, map[string]any{"adresse": nil}); err != nil {
			return fmt.Errorf("erase beneficiaire %s: appointment %s: %w", id, r, err)
		}
	}
	return domain.ScrubConflicts(ctx, tx, []string{id})
}

// retentionChunk bounds the beneficiaries anonymised per transaction,
// so a first run on a large base does not hold the write lock for long
// while devices are pushing.
const retentionChunk = 200

// RunRetention anonymises every identified beneficiary whose row and
// accompaniments have not been written for maxAge (DefaultRetention when
// zero), and returns how many it anonymised. The age is read from the
// versions of the cells themselves, so it counts writes from any device.
// Each chunk re-reads the condition inside its transaction: a
// beneficiary written to meanwhile is left alone.
func (s *Server) RunRetention(ctx context.Context, maxAge time.Duration) (int, error) {
	if maxAge <= 0 {
		maxAge = DefaultRetention
	}
	cutoff := int64(syncproto.FromTime(s.cfg.Now().Add(-maxAge)))
	total := 0
	after := ""
	for {
		// Candidates are found on the read pool, walking the ids once in
		// order: restarting the scan for every chunk made a first run on
		// a large base quadratic, and holding the writer while scanning
		// kept devices and logins waiting.
		ids, err := s.retentionCandidates(ctx, cutoff, after)
		if err != nil {
			return total, err
		}
		if len(ids) == 0 {
			return total, nil
		}
		after = ids[len(ids)-1]
		n := 0
		err = s.db.Write(ctx, func(tx *sql.Tx) error {
			for _, id := range ids {
				var still bool
				err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM beneficiaire b WHERE b.id = ? AND "+retentionDue+")",
					id, cutoff, cutoff).Scan(&still)
				if err != nil {
					return fmt.Errorf("retention: %w", err)
				}
				if !still {
					continue // written to since it was found
				}
				if err := s.eraseTx(ctx, tx, id); err != nil {
					return fmt.Errorf("retention: %w", err)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n > 0 {
			if err := s.purgeLog(ctx); err != nil {
				return total, err
			}
		}
	}
}

// retentionDue is the condition for anonymising beneficiary b: identified,
// and neither its cells nor its accompaniments' written since the cutoff
// (bound twice). CROSS JOIN keeps SQLite from walking every
// accompaniment cell for each beneficiary: it must go through the
// beneficiary's accompaniments first. (Its condition is in WHERE:
// PostgreSQL takes no ON after CROSS JOIN.)
// Each row's newest write is its version record's hlc.
var retentionDue = `COALESCE(b.anonyme, 0) = 0
	AND (SELECT r.hlc FROM _rows r WHERE r.tbl = (SELECT id FROM _tables WHERE name = 'beneficiaire') AND r.pk = ` + replica.PKSQL("b.id") + `) < ?
	AND NOT EXISTS (SELECT 1 FROM accompagnement a CROSS JOIN _rows r
	                WHERE a.beneficiaire_id = b.id AND r.tbl = (SELECT id FROM _tables WHERE name = 'accompagnement') AND r.pk = ` + replica.PKSQL("a.id") + ` AND r.hlc >= ?)`

// retentionCandidates returns up to retentionChunk beneficiaries due for
// anonymisation whose id sorts after the given one.
func (s *Server) retentionCandidates(ctx context.Context, cutoff int64, after string) ([]string, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT b.id FROM beneficiaire b WHERE b.id > ? AND "+retentionDue+" ORDER BY b.id LIMIT ?",
		after, cutoff, cutoff, retentionChunk)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("retention: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	return ids, nil
}

// runRetentionOnce runs the retention job unless another server on the
// same PostgreSQL database is running it (pgstore.TryJob): that server's
// run does the work, and this one skips until its next turn.
func (s *Server) runRetentionOnce(ctx context.Context, maxAge time.Duration) (int, error) {
	if s.db.Engine != store.Postgres {
		return s.RunRetention(ctx, maxAge)
	}
	release, ok, err := pgstore.TryJob(ctx, s.db.W, "retention")
	if err != nil || !ok {
		if err == nil {
			s.log.Info("retention job skipped: another server is running it")
		}
		return 0, err
	}
	defer release()
	return s.RunRetention(ctx, maxAge)
}

// RetentionLoop runs the retention job every interval until ctx ends,
// logging what it did. serve starts it.
func (s *Server) RetentionLoop(ctx context.Context, every, maxAge time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.runRetentionOnce(ctx, maxAge)
		if err != nil {
			s.log.Error("retention job failed", "err", err)
		} else if n > 0 {
			s.log.Info("retention job anonymised beneficiaries", "count", n, "older_than", maxAge.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
