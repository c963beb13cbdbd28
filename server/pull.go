package server

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// scopeRules are the visibility rules of the current schema.
func (s *Server) scopeRules() *scope.Rules { return scope.NewRules(s.Schema()) }

func who(p auth.Principal) scope.Who { return scope.Who{UserID: p.UserID, Role: p.Role} }

// maxScanPages bounds how many pages of cells one exchange reads while
// looking for cells the device may see. Reading by owner leaves few to
// drop, but some pages still are mostly dropped (a coordinator's team
// rows dated outside the coordination, a device's own writes, an
// administrator's scan); scanning several pages per exchange saves round
// trips on slow links, and the bound keeps one exchange short.
const maxScanPages = 16

// maxScanCells bounds, likewise, the cells one exchange reads. Pages are
// as large as the device asks (5,000 cells by default), and sixteen of
// them were 80,000 cells read, and dropped, for a device whose view kept
// none: eight devices pulling from cursor 0 again and again took more
// than half of the server's CPU in BenchmarkFlood, time taken from every
// other exchange (issue 11). Small pages still scan up to maxScanPages.
const maxScanCells = 4 * syncproto.DefaultPageLimit

// pullPage reads the cells above cursor that the principal may receive,
// in sequence order. Only the cells of the rows owned by the principal or
// the people they follow, and the untagged ones (reference and team
// tables), are read, by the owner index; the view's filter then decides
// on each of them as before. It reads further pages while the answer is less
// than half full, so that a device seeing few of the cells does not pay
// a round trip per mostly-empty page. Everything is read in one read
// transaction, so rows' owners are judged on the state the cells came
// from.
//
// With resync the device's own cells are sent too (see
// syncproto.SyncRequest.Resync).
func (s *Server) pullPage(ctx context.Context, p auth.Principal, cursor int64, limit int, resync bool) (replica.Page, error) {
	out := replica.Page{Cursor: cursor}
	// One snapshot for the whole pull, as SQLite's read transaction
	// gives: on PostgreSQL each statement of a READ COMMITTED
	// transaction would see later commits, and a row's values could be
	// read newer than its versions.
	tx, err := s.db.R.BeginTx(ctx, s.readSnapshot())
	if err != nil {
		return out, fmt.Errorf("pull: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	view, err := s.scopeRules().Load(ctx, tx, who(p))
	if err != nil {
		return out, err
	}
	// A device already holds what it wrote; sending it back would only
	// cost bytes on a slow link.
	notOwn := func(c *syncproto.Change) bool { return resync || c.Version.Node != p.DeviceID }
	scanned := 0
	for range maxScanPages {
		var page replica.Page
		want := limit - len(out.Changes)
		if view.All() {
			page, err = replica.ReadPage(ctx, tx, s.Schema(), out.Cursor, want, notOwn)
		} else {
			page, err = replica.ReadOwned(ctx, tx, s.Schema(), out.Cursor, want, view.Owners(), notOwn)
		}
		scanned += want // at most; exactly when the page is full (More)
		if err != nil {
			return out, err
		}
		kept, err := view.Filter(ctx, tx, page.Changes, page.Owners)
		if err != nil {
			return out, err
		}
		if out.Changes == nil {
			out.Changes = kept // most exchanges read one page: no copy
		} else {
			out.Changes = append(out.Changes, kept...)
		}
		out.Cursor, out.More = page.Cursor, page.More
		if !page.More || len(out.Changes) >= limit/2 || scanned >= maxScanCells {
			break
		}
	}
	var head int64
	if err := tx.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&head); err != nil {
		return out, fmt.Errorf("pull: newest sequence: %w", err)
	}
	s.metrics.pullLag.Observe(float64(max(0, head-out.Cursor)))
	return out, nil
}

// readSnapshot are the options of a read transaction that sees one
// state of the database throughout.
func (s *Server) readSnapshot() *sql.TxOptions {
	if s.db.Engine == store.Postgres {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// reannounce renumbers cells whose visibility a write may have widened
// (see scope.Reannounce). res is the merge's result: the rows it wrote
// took the last res.Numbered sequence numbers.
func (s *Server) reannounce(ctx context.Context, tx *sql.Tx, changes []syncproto.Change, res replica.Result) error {
	if res.Won == 0 {
		return nil
	}
	w := make([]scope.Written, len(changes))
	for i, c := range changes {
		w[i] = scope.Written{Table: c.Table, PK: c.PK, Column: c.Column}
	}
	return s.scopeRules().Reannounce(ctx, tx, w, res.Seq-int64(res.Numbered))
}

// MergeOptions are the merge options of every write into a server's
// database: sequence numbers for pulls, the conflict log (stamped with
// now; time.Now when nil), and owner tags on the cells of owned tables
// (which pullPage reads by). Tools that fill a data directory without a
// running server (demo, bench) merge with them too, so that what they
// write is what the server would have written.
func MergeOptions(schema *syncproto.Schema, now func() time.Time) replica.Options {
	return replica.Options{AssignSeq: true, RecordConflicts: true, Now: now, Owners: scope.NewRules(schema).OwnerColumns()}
}

// OnStore adapts merge options to the engine of db, for the tools that
// write into a server's database without a running server (demo, bench):
// on PostgreSQL other servers may write at the same time, so the merge
// checks what it read once it holds the counter and draws its numbers
// from it, as the servers' own merges do (applyOptions).
func OnStore(db *store.DB, o replica.Options) replica.Options {
	if db.Engine == store.Postgres {
		o.Shared, o.Draw = true, pgstore.NextSeq
	}
	return o
}

func (s *Server) applyOptions() replica.Options {
	o := MergeOptions(s.Schema(), s.cfg.Now)
	if s.db.Engine == store.Postgres {
		o.Shared, o.Draw = true, s.draw
	}
	return o
}

// draw reserves sequence numbers on PostgreSQL (pgstore.NextSeq: the
// counter locked until the transaction ends).
func (s *Server) draw(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
	first, err := pgstore.NextSeq(ctx, tx, n)
	if err == nil && s.cfg.AfterDraw != nil {
		s.cfg.AfterDraw()
	}
	return first, err
}
