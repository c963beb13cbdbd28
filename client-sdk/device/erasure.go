package device

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relais-numerique/relais/domain"
)

// Erase anonymises a beneficiary on this device (domain.EraseOnDevice:
// plain UPDATEs, so capture sends the erasure at the next sync) and
// empties the write-ahead log, which would otherwise keep the erased
// values in the images of the pages as they were, for days if the
// tablet stays offline.
func (r *Replica) Erase(ctx context.Context, id string) error {
	if err := domain.EraseOnDevice(ctx, r.db.W, id); err != nil {
		return err
	}
	return r.purgeLog(ctx)
}

// purgeLog copies the write-ahead log into the database file and
// truncates it. secure_delete zeroes what an erasure frees in the file's
// pages; only the log still holds the old images until a checkpoint
// empties it. A reader of the application in the middle of a read keeps
// the log busy: the checkpoint is retried a few times, then the failure
// is reported, since erasure is not done while a file holds the values.
func (r *Replica) purgeLog(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var busy, logged, moved int
		if err := r.db.W.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil {
			return fmt.Errorf("empty the write-ahead log after an erasure: %w", err)
		}
		if busy == 0 {
			return nil
		}
		if attempt == purgeAttempts {
			return errors.New("empty the write-ahead log after an erasure: readers kept it busy; " +
				"erased values may remain in the log until the next erasure or wipe")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// purgeAttempts bounds purgeLog's retries, 100 ms apart.
const purgeAttempts = 20
