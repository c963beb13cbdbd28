package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
// its cursor in one transaction, and outbox entries leave only once
// acknowledged, so an interrupted Sync loses nothing and resumes where it
// stopped.
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
	for rep.Exchanges < r.opts.MaxExchanges {
		var req *request
		var resp syncproto.SyncResponse
		var up, down int64
		var took time.Duration
		if ahead != nil {
			req = ahead.req
			up, down, took, err = ahead.wait()
			ahead = nil
			resp = req.resp
			up, down, err = r.retryRefusedToken(ctx, server, &token, req.body, &resp, up, down, err)
		} else {
			req, built = built, nil
			if req == nil {
				if req, err = r.buildRequest(ctx, cursor, pages.limit, batches.limit); err != nil {
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
		restored, err := r.checkHistory(ctx, &resp)
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
			next, err := r.buildRequest(ctx, resp.Cursor, pages.limit, batches.limit)
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
		aside, err := r.applyAnswer(ctx, batch, &resp)
		if err != nil {
			if ahead != nil {
				// It went out: its bytes count, its answer does not.
				u, d, _, _ := ahead.drop()
				rep.BytesUp += u
				rep.BytesDown += d
				rep.Exchanges++
			}
			return rep, err
		}
		if batch != nil && resp.Ack == batch.ID {
			rep.Pushed += len(batch.Changes) - aside
			rep.Conflicts += len(resp.Conflicts)
			rep.Rejected += aside
		}
		rep.Pulled += len(resp.Changes)
		cursor = resp.Cursor
		if r.progress != nil {
			r.progress(nil, 0)
		}
		pushedAll := batch == nil || (resp.Ack == batch.ID && pending == len(batch.Changes))
		if !resp.More && pushedAll {
			return rep, nil
		}
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
// so it runs on the writer, never while a page is being applied.
func (r *Replica) buildRequest(ctx context.Context, cursor int64, limit, batchSize int) (*request, error) {
	batch, pending, err := r.nextBatch(ctx, batchSize)
	if err != nil {
		return nil, err
	}
	req := syncproto.SyncRequest{
		Push: batch, Cursor: cursor, Limit: limit,
		Pending: pending, AppVersion: r.opts.AppVersion,
		RefuseRows: true,
	}
	if req.Resync, err = r.resyncing(ctx); err != nil {
		return nil, err
	}
	if req.Clock, err = r.clock(ctx); err != nil {
		return nil, err
	}
	if req.SchemaVersion, err = migrations.Version(ctx, r.db.W, migrations.Domain); err != nil {
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
// by retryRefusedToken, once the answer is back).
type pullAhead struct {
	req      *request
	up, down int64
	took     time.Duration
	err      error
	cancel   context.CancelFunc
	done     chan struct{}
}

func (r *Replica) pullAhead(ctx context.Context, server, token string, req *request) *pullAhead {
	actx, cancel := context.WithCancel(ctx)
	a := &pullAhead{req: req, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		start := time.Now()
		a.up, a.down, a.err = r.exchange(actx, server+syncproto.PathSync, token, req.body, &req.resp)
		a.took = time.Since(start)
	}()
	return a
}

// wait returns the exchange's outcome once it is over; the answer is in
// a.req.resp.
func (a *pullAhead) wait() (up, down int64, took time.Duration, err error) {
	<-a.done
	a.cancel()
	return a.up, a.down, a.took, a.err
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
// changes waiting, the batch's included.
func (r *Replica) nextBatch(ctx context.Context, size int) (*syncproto.Batch, int, error) {
	var b *syncproto.Batch
	var pending int
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
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

// clock returns the replica's clock, advanced by one event.
func (r *Replica) clock(ctx context.Context) (syncproto.Timestamp, error) {
	var t syncproto.Timestamp
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
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
	aside := 0
	// One copy, checked in place (the answer stays as received): a
	// slice grown change by change cost more than checking them
	// (BENCHMARKS.md section 10).
	keep := slices.Clone(resp.Changes)
	for i := range keep {
		c := &keep[i]
		if _, known := r.schema.ColumnType(c.Table, c.Column); known {
			if err := r.schema.Check(c); err != nil {
				return 0, fmt.Errorf("sync: server sent an invalid cell: %w", err)
			}
		}
	}
	heldErased := false
	err := r.applyLocal(ctx, func(tx *sql.Tx) error {
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
		return 0, fmt.Errorf("sync: apply answer: %w", err)
	}
	// An erasure applied from the server, or one of ours the server has
	// just acknowledged, leaves the erased values in the log's old page
	// images: empty it now rather than at some later checkpoint. A page
	// whose rows were all new here (a first sync) brought no value that
	// was ever stored on this device: the server sends erased rows
	// already erased.
	if heldErased || (batch != nil && resp.Ack == batch.ID && domain.ErasesAny(batch.Changes)) {
		if err := r.purgeLog(ctx); err != nil {
			return 0, fmt.Errorf("sync: %w", err)
		}
	}
	// Statements this page had to prepare in its transaction are kept
	// prepared for the next pages. A failure here costs only speed: the
	// next transaction prepares them again, and reports any error that
	// is real.
	_ = r.prepared.Learn(ctx)
	return aside, nil
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
