package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// Login enrols this device on the server under the user's account and
// keeps the token it gets.
func (r *Replica) Login(ctx context.Context, server, email, password string) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	server = strings.TrimRight(server, "/")
	body, err := json.Marshal(syncproto.LoginRequest{Email: email, Password: password, DeviceID: r.node, DeviceName: r.opts.DeviceName})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	var ans syncproto.TokenResponse
	if err := r.post(ctx, server+syncproto.PathLogin, "", body, &ans); err != nil {
		if isRevoked(err) {
			return r.wipeRevoked(ctx, err)
		}
		return fmt.Errorf("login: %w", err)
	}
	_, err = r.db.W.ExecContext(ctx, "UPDATE _device SET server = ?, email = ?, user_id = ?, role = NULLIF(?, ''), access_token = ?, refresh_token = ?, last_error = NULL WHERE id = 1",
		server, email, ans.UserID, ans.Role, ans.AccessToken, ans.RefreshToken)
	if err != nil {
		return fmt.Errorf("login: save token: %w", err)
	}
	r.access.received(ans.ExpiresIn)
	return nil
}

// Report says what one Sync did.
type Report struct {
	Exchanges int
	Pushed    int // changes acknowledged by the server
	Pulled    int // cells received
	Conflicts int // of our changes, those that met a concurrent write
	Rejected  int // of our changes, those the server refused for their content
	// Restamped is set when the server refused our clock as too far ahead,
	// the device's date has since been corrected, and pending writes were
	// stamped again (see restampPending).
	Restamped bool
	// ServerRestored is set when the server's history changed (it was
	// restored from a backup): this device's own writes were queued
	// again and what changed since the backup was pulled again (see
	// checkHistory). An application says so: the server lost writes.
	ServerRestored bool
	BytesUp        int64
	BytesDown      int64
}

// Sync exchanges with the server until the outbox is empty and the server
// has nothing more, or until an error. Every pulled page is applied with
// its cursor in the same transaction (a long pull commits every few pages,
// see pullGroup), and outbox entries leave only once acknowledged, so an
// interrupted Sync loses nothing and resumes where it stopped.
//
// A long pull is pipelined: when an answer says there is more and the
// request it answers pushed nothing, the request for the next page is
// sent before this page is applied, so that the server reads and encodes
// page n+1 while the device writes page n (see pullAhead). At most one
// request is in flight. Its cursor is the one the page being applied
// will persist, and nothing of its answer is kept unless that page was
// committed first: if applying fails, the answer is dropped and the next
// Sync asks again from the cursor on disk.
func (r *Replica) Sync(ctx context.Context) (Report, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	var rep Report
	server, token, cursor, err := r.link(ctx)
	if err != nil {
		return rep, err
	}
	if r.opts.Progress != nil {
		outbox, err := r.outboxSize(ctx)
		if err != nil {
			return rep, err
		}
		r.progress = func(err error, wait time.Duration) {
			r.opts.Progress(Progress{Report: rep, Outbox: outbox, Retry: err, RetryIn: wait})
		}
		defer func() { r.progress = nil }()
	}
	pages := newPageSizer(r.opts.PageLimit)
	batches := newBatchSizer(r.opts.BatchSize)
	var ahead *pullAhead // a pull sent while the previous page was applied
	var built *request   // a request built before the previous page was applied, not sent
	jsonAgain := false   // a request in the column form was refused as unreadable, and sent again in JSON
	var group *pullGroup // pages applied and not committed yet (see pullGroup)
	defer func() {
		if group != nil {
			_ = group.tx.Rollback() // an error ended the Sync: its pages are pulled again
		}
	}()
	// flush commits the open group, if any, and reports the progress.
	flush := func() error {
		if group == nil {
			return nil
		}
		g := group
		group = nil
		if err := r.commitGroup(ctx, g); err != nil {
			return err
		}
		rep.Pulled += g.pulled
		if r.progress != nil {
			r.progress(nil, 0)
		}
		return nil
	}
	// dropAhead abandons the exchange on its way: its bytes count, its
	// answer does not.
	dropAhead := func() {
		if ahead != nil {
			u, d, _, _ := ahead.drop()
			rep.BytesUp += u
			rep.BytesDown += d
			rep.Exchanges++
			ahead = nil
		}
	}
	for rep.Exchanges < r.opts.MaxExchanges {
		var req *request
		var resp syncproto.SyncResponse
		var up, down int64
		var took time.Duration
		if ahead != nil {
			if group != nil && !ahead.arrives(groupWait) {
				if err := flush(); err != nil {
					dropAhead()
					return rep, err
				}
			}
			req = ahead.req
			up, down, took, err = ahead.wait()
			ahead = nil
			resp = req.resp
			if err != nil {
				// The pages before it are whole: commit them before
				// anything else needs the writer.
				if ferr := flush(); ferr != nil {
					return rep, ferr
				}
			}
			up, down, err = r.retryRefusedToken(ctx, server, &token, req.body, &resp, up, down, err)
		} else {
			req, built = built, nil
			if req == nil {
				if req, err = r.buildRequest(ctx, nil, cursor, pages.limit, batches.limit); err != nil {
					return rep, err
				}
			}
			start := time.Now()
			up, down, err = r.exchangeAuthed(ctx, server, &token, req.body, &resp)
			took = time.Since(start)
		}
		batch, pending := req.batch, req.pending
		rep.BytesUp += up
		rep.BytesDown += down
		rep.Exchanges++
		if refusal, ok := isClockAhead(err); ok && !rep.Restamped {
			done, rerr := r.restampPending(ctx, refusal)
			if rerr != nil {
				return rep, rerr
			}
			if done {
				rep.Restamped = true
				continue
			}
		}
		if formRefused(req.body, err) && !jsonAgain {
			jsonAgain = true
			r.pushColumns.Store(false)
			if req.body, err = encodeRequest(&req.msg, false); err != nil {
				return rep, err
			}
			built = req
			continue
		}
		if err != nil {
			return rep, r.handleFailure(ctx, batch, err, &rep)
		}
		// A server restored from a backup: send our writes again, pull
		// everything again (history.go).
		restored, err := r.checkHistory(ctx, &resp, flush)
		if err != nil {
			return rep, err
		}
		rep.ServerRestored = rep.ServerRestored || restored
		pages.observe(resp.More, took)
		if batch != nil && resp.Ack == batch.ID {
			batches.observe(pending > len(batch.Changes), took)
		}
		// Only after a request that pushed nothing: one that pushed has
		// its batch still in the outbox until applyAnswer drops it, and
		// the next request must not be cut from an outbox in that state.
		if batch == nil && resp.More && rep.Exchanges < r.opts.MaxExchanges {
			// The next request is built in the group's transaction,
			// and this page applied in it: a group starts here.
			if group == nil {
				if group, err = r.beginGroup(ctx); err != nil {
					return rep, err
				}
			}
			next, err := r.buildRequest(ctx, group.tx, resp.Cursor, pages.limit, batches.limit)
			if err != nil {
				return rep, err
			}
			// A write made by the application during the exchange goes
			// out with the next request, after this page, as it would
			// have without pipelining; so does a token known to have
			// expired, which exchangeAuthed refreshes before sending.
			if next.batch == nil && !r.access.stale() {
				ahead = r.pullAhead(ctx, server, token, next)
			} else {
				built = next
			}
		}
		var aside int
		if group != nil {
			if err = group.apply(ctx, r, &resp); err != nil {
				dropAhead()
				// The pages before this one are kept.
				var serr error
				if group, serr = r.salvage(ctx, group); serr == nil {
					serr = flush()
				}
				return rep, errors.Join(err, serr)
			}
		} else if aside, err = r.applyAnswer(ctx, batch, &resp); err != nil {
			dropAhead()
			return rep, err
		}
		if batch != nil && resp.Ack == batch.ID {
			rep.Pushed += len(batch.Changes) - aside
			rep.Conflicts += len(resp.Conflicts)
			rep.Rejected += aside
		}
		if group == nil {
			rep.Pulled += len(resp.Changes)
		}
		cursor = resp.Cursor
		switch {
		case group == nil:
			if r.progress != nil {
				r.progress(nil, 0)
			}
		case ahead == nil || group.full():
			if err := flush(); err != nil {
				dropAhead()
				return rep, err
			}
		}
		pushedAll := batch == nil || (resp.Ack == batch.ID && pending == len(batch.Changes))
		if !resp.More && pushedAll {
			return rep, nil
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	return rep, fmt.Errorf("sync: stopped after %d exchanges; run it again to continue", rep.Exchanges)
}

// outboxSize counts the local changes waiting to be pushed.
func (r *Replica) outboxSize(ctx context.Context) (int, error) {
	n, err := r.pendingChanges(ctx, r.db.W)
	if err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	return n, nil
}

// sizer chooses how many cells each pull asks for, or how many outbox
// entries each push carries, unless Options.PageLimit or BatchSize fixes
// it. Fewer, larger exchanges cost fewer round trips, headers and durable
// commits, so they save device CPU and bytes (BENCHMARKS.md, "Figures behind the code"),
// but on a weak link a connection cut
// mid-exchange loses the whole page or batch, and the larger it is the
// more likely the cut. So sizes start at the least and double, up to the
// most, while full exchanges come back within growWithin; an exchange
// slower than shrinkAfter (a slow link, or one that needed retries)
// halves them again, never below the least. Only speed depends on this:
// any size gives the same data.
type sizer struct {
	fixed       bool
	limit       int
	least, most int
}

const (
	growWithin  = 500 * time.Millisecond
	shrinkAfter = 2 * time.Second
	// defaultBatch and maxBatch bound an adaptive push batch. A batch is
	// extended to whole rows after it is cut, so the most stays a row's
	// width below syncproto.MaxBatchChanges.
	defaultBatch = 1000
	maxBatch     = 4000
)

func newPageSizer(fixed int) sizer {
	return newSizer(fixed, syncproto.DefaultPageLimit, syncproto.MaxPageLimit)
}

func newBatchSizer(fixed int) sizer { return newSizer(fixed, defaultBatch, maxBatch) }

func newSizer(fixed, least, most int) sizer {
	if fixed > 0 {
		return sizer{fixed: true, limit: fixed}
	}
	return sizer{limit: least, least: least, most: most}
}

// observe adjusts the size after an exchange that took took; full says
// there was more than the exchange carried (the server had more than the
// page held, or the outbox more than the batch).
func (p *sizer) observe(full bool, took time.Duration) {
	switch {
	case p.fixed:
	case full && took < growWithin:
		p.limit = min(2*p.limit, p.most)
	case took > shrinkAfter:
		p.limit = max(p.limit/2, p.least)
	}
}

// request is one exchange's request, encoded, with what it pushes.
type request struct {
	batch   *syncproto.Batch
	pending int // outbox entries when it was built, batch included
	msg     syncproto.SyncRequest
	body    wireBody
	// resp receives the answer of a request sent ahead (see pullAhead).
	resp syncproto.SyncResponse
}

// buildRequest cuts the next batch from the outbox and encodes the
// request asking for the page after cursor. It ticks the replica's clock,
// so it runs on the writer: in tx when a pull group holds the writer (see
// pullGroup), in transactions of its own when tx is nil.
func (r *Replica) buildRequest(ctx context.Context, tx *sql.Tx, cursor int64, limit, batchSize int) (*request, error) {
	var q replica.DB = r.db.W
	if tx != nil {
		q = tx
	}
	batch, pending, err := r.nextBatch(ctx, tx, batchSize)
	if err != nil {
		return nil, err
	}
	req := syncproto.SyncRequest{
		Push: batch, Cursor: cursor, Limit: limit,
		Pending: pending, AppVersion: r.opts.AppVersion,
		RefuseRows: true,
	}
	if req.Resync, err = r.resyncing(ctx, q); err != nil {
		return nil, err
	}
	if req.Clock, err = r.clock(ctx, tx); err != nil {
		return nil, err
	}
	if req.SchemaVersion, err = migrations.Version(ctx, q, migrations.Domain); err != nil {
		return nil, err
	}
	body, err := encodeRequest(&req, r.pushColumns.Load() && !r.opts.PushJSON)
	if err != nil {
		return nil, err
	}
	return &request{batch: batch, pending: pending, msg: req, body: body}, nil
}

// encodeRequest writes a request that pushes in the column form when
// columns is set (the server said it reads it), in JSON otherwise. A
// request that only pulls goes in JSON: its few fields are all head.
func encodeRequest(req *syncproto.SyncRequest, columns bool) (wireBody, error) {
	var b wireBody
	var err error
	if b.columns = columns && req.Push != nil; b.columns {
		b.data, err = syncproto.EncodeRequestColumns(req)
	} else {
		b.data, err = json.Marshal(req)
	}
	if err != nil {
		return b, fmt.Errorf("sync: encode request: %w", err)
	}
	return b, nil
}

// formRefused reports whether a request in the column form was refused
// as unreadable: the server no longer reads that form (it was replaced
// by an older one), and the same request goes again in JSON. A server
// reading it refuses nothing of a well-formed request as unreadable.
func formRefused(body wireBody, err error) bool {
	code := syncproto.CodeOf(err)
	return body.columns && (code == syncproto.CodeMalformedBody || code == syncproto.CodeUnsupportedEncoding)
}

// pullAhead is a pull request on its way while the page before it is
// applied. Its goroutine only sends, retries on network errors and
// decodes: it touches neither the database nor the token, which stay
// with the goroutine running Sync (a refused token is refreshed there,
// by retryRefusedToken, once the answer is back), nor the report:
// its retry notices wait in retries until the goroutine running Sync
// waits for the answer, and tells Options.Progress of them then.
type pullAhead struct {
	req      *request
	up, down int64
	took     time.Duration
	err      error
	cancel   context.CancelFunc
	done     chan struct{}
	retries  chan retryNotice // the latest retry not told yet
	notify   func(err error, wait time.Duration)
}

// retryNotice is a retry of an exchange: why, and when the next try is.
type retryNotice struct {
	err  error
	wait time.Duration
}

func (r *Replica) pullAhead(ctx context.Context, server, token string, req *request) *pullAhead {
	actx, cancel := context.WithCancel(ctx)
	a := &pullAhead{req: req, cancel: cancel, done: make(chan struct{}), retries: make(chan retryNotice, 1), notify: r.notifyProgress}
	go func() {
		defer close(a.done)
		start := time.Now()
		a.up, a.down, a.err = r.exchange(actx, server+syncproto.PathSync, token, req.body, &req.resp, a.keep)
		a.took = time.Since(start)
	}()
	return a
}

// keep holds a retry notice for the goroutine running Sync, in place of
// one it has not read yet: only the latest says when the next try is.
func (a *pullAhead) keep(err error, wait time.Duration) {
	n := retryNotice{err: err, wait: wait}
	for {
		select {
		case a.retries <- n:
			return
		default:
		}
		select {
		case <-a.retries:
		default:
		}
	}
}

// wait returns the exchange's outcome once it is over; the answer is in
// a.req.resp.
func (a *pullAhead) wait() (up, down int64, took time.Duration, err error) {
	a.await(nil)
	a.cancel()
	return a.up, a.down, a.took, a.err
}

// arrives says whether the exchange is over, or ends within d.
func (a *pullAhead) arrives(d time.Duration) bool {
	select {
	case <-a.done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	return a.await(t.C)
}

// await waits for the exchange to end (true) or for timeout (false; a
// nil channel never fires), telling Options.Progress of its retries
// meanwhile.
func (a *pullAhead) await(timeout <-chan time.Time) bool {
	for {
		select {
		case <-a.done:
			return true
		case n := <-a.retries:
			a.notify(n.err, n.wait)
		case <-timeout:
			return false
		}
	}
}

// drop abandons the exchange (its answer is not needed any more) and
// waits for its goroutine to end.
func (a *pullAhead) drop() (up, down int64, took time.Duration, err error) {
	a.cancel()
	return a.wait()
}

func (r *Replica) link(ctx context.Context) (server, token string, cursor int64, err error) {
	var s, t sql.NullString
	var revoked sql.NullInt64
	err = r.db.W.QueryRowContext(ctx, "SELECT server, access_token, cursor, revoked_at FROM _device WHERE id = 1").Scan(&s, &t, &cursor, &revoked)
	if err != nil {
		return "", "", 0, fmt.Errorf("sync: read device state: %w", err)
	}
	if revoked.Valid {
		return "", "", 0, syncproto.Errorf(syncproto.CodeDeviceRevoked, "this device was revoked and its data erased")
	}
	if !s.Valid || !t.Valid || t.String == "" {
		return "", "", 0, ErrNotLoggedIn
	}
	return s.String, t.String, cursor, nil
}

// nextBatch returns the batch to push: the one already in flight if its
// answer never came (sent again identical, so the server can recognise
// it: its entries are frozen), or a new one cut from the oldest entries,
// extended to whole rows so the server checks each row with all of its
// new cells, and frozen in the same transaction. pending counts the
// changes waiting, the batch's included. It runs in in when set (a pull
// group's transaction), in a transaction of its own otherwise.
func (r *Replica) nextBatch(ctx context.Context, in *sql.Tx, size int) (*syncproto.Batch, int, error) {
	var b *syncproto.Batch
	var pending int
	err := r.writeIn(ctx, in, func(tx *sql.Tx) error {
		var id string
		// A batch already cut is sent again until acknowledged. Ordered
		// by batch id (UUIDv7: the order batches were cut in), which the
		// batch index serves.
		err := tx.QueryRowContext(ctx, r.outbox.InFlight).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			id = uuid.Must(uuid.NewV7()).String()
			cut, err := r.cutBatch(ctx, tx, id, size)
			if err != nil || !cut {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("cut batch: %w", err)
		}
		changes, err := readChanges(ctx, tx, "o.batch = ?1", id)
		if err != nil {
			return fmt.Errorf("read batch %s: %w", id, err)
		}
		b = &syncproto.Batch{ID: id, Changes: changes}
		pending, err = r.pendingChanges(ctx, tx)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sync: %w", err)
	}
	if b != nil && len(b.Changes) == 0 {
		b = nil
	}
	return b, pending, nil
}

// cutBatch gives the id to the oldest entries of the outbox holding about
// size changes, then to the other entries of the rows they touch, so that
// a row travels whole (the server's rules judge rows), and freezes them.
// Extending to whole rows can pass the protocol's limit on a batch, which
// the server would refuse whole: the cut is then made again with half the
// size, down to one entry, whose row alone is far below the limit (the
// entries frozen by the larger cut stay frozen, which changes nothing of
// what they send). It reports whether anything was cut.
func (r *Replica) cutBatch(ctx context.Context, tx *sql.Tx, id string, size int) (bool, error) {
	for size = max(size, 1); ; size = max(size/2, 1) {
		res, err := tx.ExecContext(ctx, r.outbox.Cut, id, size)
		if err != nil {
			return false, fmt.Errorf("cut batch: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return false, nil
		}
		if err := r.freeze(ctx, tx, id, nil); err != nil {
			return false, fmt.Errorf("cut batch: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, r.outbox.BatchChanges, id).Scan(&n); err != nil {
			return false, fmt.Errorf("cut batch: %w", err)
		}
		if n <= syncproto.MaxBatchChanges || size == 1 {
			return true, nil
		}
		if _, err := tx.ExecContext(ctx, r.outbox.Uncut, id); err != nil {
			return false, fmt.Errorf("cut batch: %w", err)
		}
	}
}

// clock returns the replica's clock, advanced by one event, saved in in
// when set, in a transaction of its own otherwise.
func (r *Replica) clock(ctx context.Context, in *sql.Tx) (syncproto.Timestamp, error) {
	var t syncproto.Timestamp
	err := r.writeIn(ctx, in, func(tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, "SELECT hlc FROM _replica WHERE id = 1").Scan(&last); err != nil {
			return err
		}
		t = syncproto.Next(syncproto.Timestamp(last), 0, syncproto.FromTime(r.wallClock()))
		return replica.SaveClock(ctx, tx, t)
	})
	if err != nil {
		return 0, fmt.Errorf("sync: clock: %w", err)
	}
	return t, nil
}

// applyAnswer commits one answer in one transaction: the acknowledged
// batch leaves the outbox, the rows the server refused in it are set
// aside (see setAside), the pulled page is merged, the cursor and the
// clock advance. If the device dies before the commit, none of it
// happened and the next Sync redoes it. It returns the number of changes
// set aside.
func (r *Replica) applyAnswer(ctx context.Context, batch *syncproto.Batch, resp *syncproto.SyncResponse) (int, error) {
	var aside int
	var purge bool
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		aside, purge, err = r.applyAnswerIn(ctx, tx, batch, resp)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sync: apply answer: %w", err)
	}
	return aside, r.afterCommit(ctx, purge)
}

// applyAnswerIn does applyAnswer's work in tx, which the caller commits.
// purge says the write-ahead log must be emptied once it is committed
// (see afterCommit).
func (r *Replica) applyAnswerIn(ctx context.Context, tx *sql.Tx, batch *syncproto.Batch, resp *syncproto.SyncResponse) (aside int, purge bool, err error) {
	// Checked in place: the answer is not read again once applied, and
	// a copy of a page's changes is a megabyte for the garbage
	// collector (a slice grown change by change cost more than checking
	// them, BENCHMARKS.md section 10).
	keep := resp.Changes
	for i := range keep {
		c := &keep[i]
		if _, known := r.schema.ColumnType(c.Table, c.Column); known {
			if err := r.schema.Check(c); err != nil {
				return 0, false, fmt.Errorf("sync: server sent an invalid cell: %w", err)
			}
		}
	}
	heldErased := false
	err = r.silenced(ctx, tx, func() error {
		// The pending writes to the rows the page brings, and to the
		// rows refused, are frozen first: their values are read before
		// the page may change them, their prev before the records move.
		touched := rowKeys(keep)
		if batch != nil && resp.Ack == batch.ID {
			for _, rf := range resp.Refused {
				touched = append(touched, syncproto.RowKey{Table: rf.Table, PK: rf.PK})
			}
		}
		if len(touched) > 0 {
			if err := r.freeze(ctx, tx, "", touched); err != nil {
				return err
			}
		}
		if batch != nil && resp.Ack == batch.ID {
			// Before the page: the page may bring a newer version of a
			// cell whose refused write is put back as the server held it.
			n, err := r.setAside(ctx, tx, batch.ID, resp.Refused, time.Now())
			if err != nil {
				return err
			}
			aside = n
			if err := r.acknowledge(ctx, tx, batch, resp.Refused); err != nil {
				return err
			}
		}
		res, err := replica.Apply(ctx, tx, r.schema, keep, replica.Options{Prepared: r.prepared, Pending: r.pendingVersions})
		if err != nil {
			return err
		}
		// Only rows held before can have left values in the log, and
		// the values kept beside them: refused writes (_rejected) and
		// conflicts, which the erasure trigger scrubs even for a row
		// new to the replica.
		if domain.ErasesAny(keep) {
			heldErased = res.Fresh < res.Rows
			if !heldErased {
				if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM _rejected) OR EXISTS (SELECT 1 FROM _conflicts)").Scan(&heldErased); err != nil {
					return err
				}
			}
		}
		var last int64
		if err := tx.QueryRowContext(ctx, "SELECT hlc FROM _replica WHERE id = 1").Scan(&last); err != nil {
			return err
		}
		next := syncproto.Next(syncproto.Timestamp(last), resp.Clock, syncproto.FromTime(r.wallClock()))
		if err := replica.SaveClock(ctx, tx, next); err != nil {
			return err
		}
		var lastSync any
		if !resp.More {
			lastSync = time.Now().UnixMilli()
			// A full pull an older SDK asked for after a refusal is
			// complete.
			if _, err := tx.ExecContext(ctx, "UPDATE _device SET resync = 0 WHERE id = 1"); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, "UPDATE _device SET cursor = ?, last_sync_at = COALESCE(?, last_sync_at), last_error = NULL WHERE id = 1",
			resp.Cursor, lastSync)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	// An erasure applied from the server, or one of ours the server has
	// just acknowledged, leaves the erased values in the log's old page
	// images: the log is emptied once this is committed rather than at
	// some later checkpoint. A page whose rows were all new here (a
	// first sync) brought no value that was ever stored on this device:
	// the server sends erased rows already erased.
	purge = heldErased || (batch != nil && resp.Ack == batch.ID && domain.ErasesAny(batch.Changes))
	return aside, purge, nil
}

// afterCommit follows the commit of answers: it empties the write-ahead
// log when purge says an erasure met values held before, and keeps
// prepared the statements the pages had to prepare in their
// transaction, for the next pages. A failure of the latter costs only
// speed: the next transaction prepares them again, and reports any
// error that is real.
func (r *Replica) afterCommit(ctx context.Context, purge bool) error {
	if purge {
		if err := r.purgeLog(ctx); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	_ = r.prepared.Learn(ctx)
	return nil
}

// A pull group is one transaction holding several pulled pages: a long
// pull (a first sync) commits every few pages instead of after each, and
// the requests built meanwhile (their clock ticks) no longer commit on
// their own. Each commit is durable (synchronous = FULL) and, with rows
// on random UUID keys, writes again most of the B-tree pages the pages
// touched: at 50k activities, a fifth fewer bytes written (BENCHMARKS.md
// section 10). Every page still writes its cursor in the same
// transaction as its rows, so what is committed is always consistent: a
// device that dies mid-group loses the group's pages and pulls them
// again from the cursor committed before it; a page that fails to apply
// loses only itself (salvage).
//
// A group only goes on with pages the pipeline brings (pullAhead: the
// request for page n+1 is built in the group's transaction, then sent
// while page n is applied), and is committed once it holds
// maxGroupPages pages or maxGroupCells cells or is maxGroupFor old, when
// the next page does not arrive within groupWait, before anything else
// needs the writer (a refused token, an error, a server restored from a
// backup), and at the end of the pull. The application's writes wait
// for the writer while a group holds it: maxGroupFor bounds that wait,
// as a page's apply did.
type pullGroup struct {
	tx     *sql.Tx
	pages  int
	since  time.Time
	purge  bool // an erasure met values held before: empty the log once committed
	pulled int  // cells of its pages, counted in Report.Pulled once committed
	// applied are its pages' answers, kept until it is committed to be
	// applied again should a later page fail (see salvage).
	applied []*syncproto.SyncResponse
}

const (
	maxGroupPages = 16
	// maxGroupCells bounds the answers a group keeps (about 8 MiB).
	maxGroupCells = 60_000
	maxGroupFor   = time.Second
	// groupWait bounds how long an open group waits for the next page.
	// The retry notices of a page on its way reach Options.Progress
	// from the exchange's goroutine; one that waited for the writer
	// waits for the group at most this long.
	groupWait = 200 * time.Millisecond
)

func (r *Replica) beginGroup(ctx context.Context) (*pullGroup, error) {
	// Not cancelled with ctx (database/sql would roll it back): the
	// pages it holds are whole, and an interrupted Sync commits them.
	tx, err := r.db.W.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("sync: begin write: %w", err)
	}
	return &pullGroup{tx: tx, since: time.Now()}, nil
}

// apply applies one answer that pushed nothing in the group.
func (g *pullGroup) apply(ctx context.Context, r *Replica, resp *syncproto.SyncResponse) error {
	_, purge, err := r.applyAnswerIn(ctx, g.tx, nil, resp)
	if err != nil {
		return fmt.Errorf("sync: apply answer: %w", err)
	}
	g.pages++
	g.pulled += len(resp.Changes)
	g.purge = g.purge || purge
	g.applied = append(g.applied, resp)
	return nil
}

// salvage rolls back a group one of whose pages failed to apply, and
// applies the pages before it again in a group of its own, which the
// caller commits: they stay, as they would have without groups. A
// savepoint per page would do the same without applying anything twice,
// but costs every page a copy of each B-tree page it touches (SQLite's
// sub-journal), about 4 % of a first sync's CPU, where this costs only
// the rare failure.
func (r *Replica) salvage(ctx context.Context, g *pullGroup) (*pullGroup, error) {
	_ = g.tx.Rollback()
	if len(g.applied) == 0 {
		return nil, nil
	}
	// Even when the page failed because the Sync was cancelled: these
	// pages were applied once already, and an interrupted Sync keeps
	// the pages it has whole.
	ctx = context.WithoutCancel(ctx)
	again, err := r.beginGroup(ctx)
	if err != nil {
		return nil, err
	}
	for _, resp := range g.applied {
		if err := again.apply(ctx, r, resp); err != nil {
			_ = again.tx.Rollback()
			return nil, err
		}
	}
	return again, nil
}

// full says the group must be committed now rather than take the next
// page.
func (g *pullGroup) full() bool {
	return g.pages >= maxGroupPages || g.pulled >= maxGroupCells || time.Since(g.since) >= maxGroupFor
}

func (r *Replica) commitGroup(ctx context.Context, g *pullGroup) error {
	if err := g.tx.Commit(); err != nil {
		return fmt.Errorf("sync: commit pulled pages: %w", err)
	}
	return r.afterCommit(ctx, g.purge)
}

// silenced runs fn in tx with the capture triggers silenced, for writes
// that come from elsewhere and must not be echoed back to the server.
func (r *Replica) silenced(ctx context.Context, tx *sql.Tx, fn func() error) error {
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("silence triggers: %w", err)
	}
	if err := fn(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 0 WHERE id = 1"); err != nil {
		return fmt.Errorf("restore triggers: %w", err)
	}
	return nil
}

// writeIn runs fn in in when it is set (a pull group's transaction), in
// a write transaction of its own otherwise.
func (r *Replica) writeIn(ctx context.Context, in *sql.Tx, fn func(tx *sql.Tx) error) error {
	if in != nil {
		return fn(in)
	}
	return r.db.Write(ctx, fn)
}

// contentCodes are refusals of what a batch says, not of who sent it or
// when: re-sending the batch would fail forever, so its rows are set
// aside (see setAsideBatch) and the outbox moves on. A server of this
// version refuses whole only a batch naming a table it does not know;
// the others come from older servers.
var contentCodes = map[syncproto.Code]bool{
	syncproto.CodeBadChange: true, syncproto.CodeBadValue: true, syncproto.CodeUnknownTable: true,
	syncproto.CodeUnknownColumn: true, syncproto.CodeInvalidRow: true, syncproto.CodeForbiddenScope: true,
}

func (r *Replica) handleFailure(ctx context.Context, batch *syncproto.Batch, err error, rep *Report) error {
	if isRevoked(err) {
		return r.wipeRevoked(ctx, err)
	}
	var pe *syncproto.Error
	if errors.As(err, &pe) && batch != nil && contentCodes[pe.Code] {
		var n int
		werr := r.applyLocal(ctx, func(tx *sql.Tx) error {
			var err error
			n, err = r.setAsideBatch(ctx, tx, batch, pe, time.Now())
			return err
		})
		if werr != nil {
			return fmt.Errorf("sync: set rejected batch aside: %w", werr)
		}
		rep.Rejected += n
	}
	if _, dberr := r.db.W.ExecContext(ctx, "UPDATE _device SET last_error = ? WHERE id = 1", Describe(err)); dberr != nil {
		return errors.Join(err, dberr)
	}
	return err
}
