package device

import (
	"context"
	"database/sql"
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
		// The records hold what the device received and what the server
		// acknowledged, never a pending write (see rows.go).
		if err := resolvePrev(ctx, tx); err != nil {
			return err
		}
		received, err := replica.MaxHLC(ctx, tx)
		if err != nil {
			return fmt.Errorf("restamp: %w", err)
		}
		clock := max(received, syncproto.MakeTimestamp(serverMs, 0))
		type entry struct {
			id            int64
			tbl, pk, col  string
			hlc, prevHLC  int64
			node, prevNod string
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, tbl, pk, col, hlc, node, prev_hlc, prev_node FROM _outbox ORDER BY id")
		if err != nil {
			return fmt.Errorf("restamp: %w", err)
		}
		var entries []entry
		for rows.Next() {
			var e entry
			if err := rows.Scan(&e.id, &e.tbl, &e.pk, &e.col, &e.hlc, &e.node, &e.prevHLC, &e.prevNod); err != nil {
				rows.Close()
				return fmt.Errorf("restamp: %w", err)
			}
			entries = append(entries, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("restamp: %w", err)
		}
		// A pending write whose prev is another pending write of ours
		// must point at that write's new stamp, or the server would see
		// a concurrent write where there is a succession.
		type stamp struct {
			tbl, pk, col string
			hlc          int64
		}
		renamed := map[stamp]int64{}
		for _, e := range entries {
			prev := e.prevHLC
			if e.prevNod == r.node {
				if n, ok := renamed[stamp{e.tbl, e.pk, e.col, prev}]; ok {
					prev = n
				}
			}
			// A write must stay above the version it overwrote, or the
			// merge would let that version win back without a conflict
			// (its prev matches) and the write would be lost in silence.
			// The cells of pending writes are left out of the received
			// maximum above, so their prev is taken into account here.
			// Found by the reliability simulation (seed 500830).
			clock = syncproto.Next(max(clock, syncproto.Timestamp(prev)), 0, syncproto.FromTime(wall))
			renamed[stamp{e.tbl, e.pk, e.col, e.hlc}] = int64(clock)
			if _, err := tx.ExecContext(ctx, "UPDATE _outbox SET hlc = ?, prev_hlc = ?, batch = NULL WHERE id = ?", int64(clock), prev, e.id); err != nil {
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
