package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// A tablet whose date was set months ahead stamps its writes with that
// date. The server refuses them (clock_ahead) rather than let them win
// every conflict. Once the date is corrected, the device would still be
// stuck: its pending writes carry the future stamps, and its hybrid clock,
// which never goes back, keeps stamping new writes in the future.
//
// restampPending is the way out. Those stamps never left the device (the
// server refused them before storing anything, and ignores request clocks
// beyond its bound), so the device may lower its clock to the highest
// version it received and stamp its pending writes again. It does so only
// when its wall clock now agrees with the server's, and says so in the
// sync report; it never happens silently on the server side.
func (r *Replica) restampPending(ctx context.Context, refusal *syncproto.Error) (bool, error) {
	serverMs, ok1 := number(refusal.Details[syncproto.DetailServerTime])
	boundMs, ok2 := number(refusal.Details[syncproto.DetailMaxAheadMs])
	if !ok1 || !ok2 || boundMs <= 0 {
		return false, nil
	}
	wall := r.wallClock()
	if wall.UnixMilli()-serverMs > boundMs/2 {
		return false, nil // the date is still wrong: the user must fix it first
	}
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
		// Every entry frozen first: its values are read now, its prev
		// worked out before the clock moves, and it is stamped alone.
		if err := r.freeze(ctx, tx, "", nil); err != nil {
			return err
		}
		// The records hold what the device received and what the server
		// acknowledged, never a pending write.
		received, err := replica.MaxHLC(ctx, tx)
		if err != nil {
			return fmt.Errorf("restamp: %w", err)
		}
		clock := max(received, syncproto.MakeTimestamp(serverMs, 0))
		changes, err := readEntries(ctx, tx, "1")
		if err != nil {
			return fmt.Errorf("restamp: %w", err)
		}
		type entry struct {
			id      int64
			changes []syncproto.Change
		}
		var entries []*entry // in the outbox's order
		for _, c := range changes {
			if len(entries) == 0 || entries[len(entries)-1].id != c.entry {
				entries = append(entries, &entry{id: c.entry})
			}
			e := entries[len(entries)-1]
			e.changes = append(e.changes, c.Change)
		}
		// A pending write whose prev is another pending write of ours
		// must point at that write's new stamp, or the server would see
		// a concurrent write where there is a succession.
		type stamp struct {
			table, pk, col string
			hlc            syncproto.Timestamp
		}
		renamed := map[stamp]syncproto.Timestamp{}
		for _, e := range entries {
			prevs := map[string][2]any{}
			var newest syncproto.Timestamp
			for _, c := range e.changes {
				prev := c.Prev
				if prev.Node == r.node {
					if n, ok := renamed[stamp{c.Table, c.PK, c.Column, prev.HLC}]; ok {
						prev.HLC = n
					}
				}
				prevs[c.Column] = [2]any{int64(prev.HLC), prev.Node}
				newest = max(newest, prev.HLC)
			}
			// A write must stay above the version it overwrote, or the
			// merge would let that version win back without a conflict
			// (its prev matches) and the write would be lost in silence.
			// The cells of pending writes are left out of the received
			// maximum above, so their prev is taken into account here.
			// Found by the reliability simulation (seed 500830).
			clock = syncproto.Next(max(clock, newest), 0, syncproto.FromTime(wall))
			for _, c := range e.changes {
				renamed[stamp{c.Table, c.PK, c.Column, c.Version.HLC}] = clock
			}
			prevJSON, err := json.Marshal(prevs)
			if err != nil {
				return fmt.Errorf("restamp: %w", err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE _outbox SET hlc = ?, prev = ?, batch = NULL WHERE id = ?",
				int64(clock), string(prevJSON), e.id); err != nil {
				return fmt.Errorf("restamp: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, "UPDATE _replica SET hlc = ? WHERE id = 1", int64(clock))
		return err
	})
	if err != nil {
		return false, err
	}
	return true, nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// isClockAhead returns the refusal when err is a clock_ahead answer.
func isClockAhead(err error) (*syncproto.Error, bool) {
	var pe *syncproto.Error
	if errors.As(err, &pe) && pe.Code == syncproto.CodeClockAhead {
		return pe, true
	}
	return nil, false
}
