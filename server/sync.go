package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

func (s *Server) handleSync(c *fiber.Ctx) error {
	// One exchange per device at a time: a device cannot queue work in
	// front of the others by sending many at once, and a retry that
	// overtakes its own earlier request is told to wait.
	dev := principal(c).DeviceID
	if _, busy := s.exchanging.LoadOrStore(dev, struct{}{}); busy {
		c.Set(fiber.HeaderRetryAfter, "1")
		return fail(c, syncproto.Errorf(syncproto.CodeRateLimited,
			"an exchange of this device is already in progress; retry when it has ended").With(syncproto.DetailRetryAfterSeconds, 1))
	}
	defer s.exchanging.Delete(dev)
	// Devices send the column form of a request only to a server that
	// lists it here (syncproto.HeaderAcceptPost), on every answer.
	c.Set(syncproto.HeaderAcceptPost, acceptPost)
	raw, err := s.body(c)
	if err != nil {
		return fail(c, err)
	}
	decode := syncproto.DecodeRequest // JSON, also when the device names no type (older SDKs)
	if syncproto.IsColumns(c.Get(fiber.HeaderContentType)) {
		decode = syncproto.DecodeRequestColumns
	}
	req, err := decode(raw)
	if err != nil {
		return fail(c, err)
	}
	resp, err := s.Exchange(c.UserContext(), principal(c), req)
	if err != nil {
		return fail(c, err)
	}
	return reply(c, resp)
}

// acceptPost lists the request forms an exchange takes.
const acceptPost = syncproto.MediaTypeColumns + ", " + fiber.MIMEApplicationJSON

// Exchange is one sync exchange for an authenticated device: apply the
// pushed batch, if any, then read one page of cells above the cursor.
func (s *Server) Exchange(ctx context.Context, p auth.Principal, req *syncproto.SyncRequest) (*syncproto.SyncResponse, error) {
	resp := &syncproto.SyncResponse{Changes: []syncproto.Change{}}
	// The request's clock advances ours only when it is believable; a
	// device whose clock runs far ahead must not drag the server along.
	if s.clock.CheckOffset(req.Clock) == nil {
		if _, err := s.clock.Update(req.Clock); err != nil {
			return nil, err
		}
	}
	var own seqRange
	// The device's note for the fleet (noteDevice) is written with the
	// push when there is one, so that an exchange waits for the writer
	// once: behind a flood of big batches each wait was up to one batch
	// long (issue 11). Only whether this exchange leaves the device caught
	// up is not known before the pull; the push's write guesses it, and a
	// second write corrects it in the rare exchange where it guessed
	// wrong.
	note := deviceNote{now: s.cfg.Now(), req: req}
	if req.Push != nil {
		if err := s.push(ctx, p, req.Push, req.RefuseRows, resp, &own, &note); err != nil {
			if code := syncproto.CodeOf(err); code != "" && code != syncproto.CodeInternal {
				s.metrics.refusals.WithLabelValues(string(code)).Inc()
			}
			return nil, err
		}
	}
	limit := req.Limit
	if limit == 0 {
		limit = syncproto.DefaultPageLimit
	}
	limit = min(limit, syncproto.MaxPageLimit)
	page, err := s.pullPage(ctx, p, pullFrom(req, own), limit, req.Resync)
	if err != nil {
		if note.written && note.guessed {
			// Not caught up after all: put last_sync_at back.
			if nerr := s.noteAfterPull(ctx, p, &note, false); nerr != nil {
				err = errors.Join(err, nerr)
			}
		}
		return nil, err
	}
	if page.Changes != nil {
		resp.Changes = page.Changes
	}
	resp.Cursor, resp.More = page.Cursor, page.More
	s.witnessServed(resp.Changes)
	resp.Clock = s.clock.Now()
	resp.History, resp.HistoryParent, resp.HistorySharedSeq = s.history.id, s.history.parent, s.history.sharedSeq
	if err := s.noteAfterPull(ctx, p, &note, !page.More); err != nil {
		return nil, err
	}
	return resp, nil
}

// seqRange is the sequence numbers (from, to] that a pushed batch's
// cells were given when it was applied.
type seqRange struct{ from, to int64 }

// pullFrom is where an exchange's pull starts: the device's cursor, or
// past the batch this exchange just applied when the cursor is right
// below it. Those cells are the device's own writes (push refuses a
// change signed by another node), which a pull does not send back unless
// it is a resync (see pullPage); nothing else can be numbered between
// them, as one transaction numbered them all. Reading them only to drop
// them was a large share of the server's CPU in an ingest, where each
// exchange's pull would read the thousand cells just pushed (BENCHMARKS.md, "Figures behind the code").
func pullFrom(req *syncproto.SyncRequest, own seqRange) int64 {
	if req.Resync || own.to <= own.from || req.Cursor != own.from {
		return req.Cursor
	}
	return own.to
}

// batchRecord is what is kept of an applied batch, to answer a re-sent one.
type batchRecord struct {
	Applied   int                        `json:"applied"`
	Conflicts []syncproto.ConflictReport `json:"conflicts,omitempty"`
	Refused   []syncproto.Refusal        `json:"refused,omitempty"`
}

// rowRefusal is the server's verdict on one row of a batch, before it is
// turned into a syncproto.Refusal.
type rowRefusal struct {
	first  int // index of the row's first change in the batch
	code   syncproto.Code
	reason string // in French
	rule   string
	err    *syncproto.Error // the whole-batch error, for older devices
}

// push applies a batch in one transaction. A batch already applied is
// acknowledged again with its first answer and not applied twice. own is
// set to the sequence numbers the batch's cells were given, when this
// exchange applied it.
//
// A row the sender may not write, or whose values break a domain rule or
// the schema's types, is refused alone: its changes are left out, the
// batch's other rows are applied, and the answer lists the refused rows
// (resp.Refused) with the server's version of their cells. A device
// that did not ask for that (req.RefuseRows unset, an older SDK) gets
// the whole batch refused with the first row's error, as before. What
// makes the batch itself unreadable (an unknown table, a change signed
// by another node, a clock too far ahead) refuses it whole.
func (s *Server) push(ctx context.Context, p auth.Principal, b *syncproto.Batch, rowsOK bool, resp *syncproto.SyncResponse, own *seqRange, note *deviceNote) error {
	schema := s.Schema()
	var newest syncproto.Timestamp
	refused := map[syncproto.RowKey]*rowRefusal{}
	for i := range b.Changes {
		ch := &b.Changes[i]
		if ch.Version.Node != p.DeviceID {
			return syncproto.Errorf(syncproto.CodeBadChange,
				"change %d is signed by node %q; a device may only push its own writes", i, ch.Version.Node).With(syncproto.DetailIndex, i)
		}
		if err := schema.Check(ch); err != nil {
			var pe *syncproto.Error
			if !rowsOK || !errors.As(err, &pe) || pe.Code == syncproto.CodeUnknownTable {
				return withIndex(err, i)
			}
			k := ch.Row()
			if refused[k] == nil {
				refused[k] = &rowRefusal{first: i, code: pe.Code, reason: typeReason(pe.Code, ch.Column), err: pe.With(syncproto.DetailIndex, i)}
			}
			continue
		}
		if err := s.clock.CheckOffset(ch.Version.HLC); err != nil {
			return s.recordRefusal(ctx, p, b, withIndex(err, i))
		}
		newest = max(newest, ch.Version.HLC)
	}
	if newest > 0 {
		if _, err := s.clock.Update(newest); err != nil {
			return err
		}
	}
	// The rules' check queries are SQLite's: on PostgreSQL they run on a
	// SQLite copy of the rows (pgrules.go), not prepared here.
	if err := s.stmts.warm(ctx, s.db.W, schema, s.rules == nil); err != nil {
		return err
	}
	opts := s.applyOptions()
	opts.Prepared = s.stmts.mergeStatements()
	var applied seqRange
	var fresh *batchRecord // set when this exchange applied the batch
	// The writer is shared fairly between devices by cost (groupWriter):
	// about one unit per cell written, and one for the note.
	err := s.writes.Do(ctx, p.DeviceID, len(b.Changes)+1, func(wtx *sql.Tx) error {
		tx := s.stmts.in(wtx)
		if s.db.Engine == store.Postgres {
			// A batch retried on another server while this one still
			// runs it waits here, then finds the answer below.
			if err := pgstore.LockKey(ctx, wtx, "push:"+p.DeviceID); err != nil {
				return fmt.Errorf("push batch %s: %w", b.ID, err)
			}
		}
		var stored string
		err := tx.QueryRowContext(ctx, batchAnswerSQL, p.DeviceID, b.ID).Scan(&stored)
		if err == nil {
			var rec batchRecord
			if err := json.Unmarshal([]byte(stored), &rec); err != nil {
				return fmt.Errorf("push batch %s: stored answer: %w", b.ID, err)
			}
			resp.Applied, resp.Conflicts, resp.Refused = rec.Applied, rec.Conflicts, rec.Refused
			return note.writeTx(ctx, wtx, p.DeviceID)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		if err := s.refusedBefore(ctx, tx, p, b); err != nil {
			return err
		}
		held, scoped, err := s.scopeRules().JudgePush(ctx, tx, who(p), b.Changes)
		if err != nil {
			return err
		}
		for k, v := range scoped {
			if r := refused[k]; r == nil || v.First < r.first {
				refused[k] = &rowRefusal{first: v.First, code: syncproto.CodeForbiddenScope, reason: v.Reason, err: v.Err()}
			}
		}
		if !rowsOK && len(refused) > 0 {
			return firstRefusal(refused).err
		}
		write := func(table, pk string, values map[string]any) error {
			return s.WriteRowTx(ctx, wtx, table, pk, values)
		}
		// The domain's rules judge rows once merged with what the server
		// holds: the batch is applied in a savepoint, the rows it made
		// invalid are refused, and it is applied again without them.
		// Rules judge one row at a time, so the second pass breaks
		// nothing new; the loop is bounded by the batch's rows anyway.
		var res replica.Result
		var accepted []syncproto.Change
		for attempt := 0; ; attempt++ {
			accepted = withoutRows(b.Changes, refused)
			if _, err := wtx.ExecContext(ctx, "SAVEPOINT batch_rows"); err != nil {
				return fmt.Errorf("push batch %s: %w", b.ID, err)
			}
			rules, err := domain.BeforeApply(ctx, s.rulesOn(tx), schema, accepted)
			if err != nil {
				return fmt.Errorf("push batch %s: %w", b.ID, err)
			}
			if res, err = replica.Apply(ctx, wtx, schema, accepted, opts); err != nil {
				return fmt.Errorf("push batch %s: %w", b.ID, err)
			}
			broken, err := rules.Finish(ctx, s.rulesOn(tx), write)
			if err != nil {
				return err
			}
			if len(broken) == 0 || attempt > len(b.Changes) {
				if len(broken) > 0 {
					return rules.Refusal(broken[0])
				}
				if _, err := wtx.ExecContext(ctx, "RELEASE batch_rows"); err != nil {
					return fmt.Errorf("push batch %s: %w", b.ID, err)
				}
				break
			}
			if !rowsOK {
				return rules.Refusal(broken[0])
			}
			if _, err := wtx.ExecContext(ctx, "ROLLBACK TO batch_rows; RELEASE batch_rows"); err != nil {
				return fmt.Errorf("push batch %s: %w", b.ID, err)
			}
			for _, v := range broken {
				k := syncproto.RowKey{Table: v.Table, PK: v.PK}
				first := slices.IndexFunc(b.Changes, func(c syncproto.Change) bool { return c.Row() == k })
				refused[k] = &rowRefusal{first: first, code: syncproto.CodeInvalidRow,
					reason: v.Rule.Message, rule: v.Rule.Name, err: rules.Refusal(v).With(syncproto.DetailIndex, first)}
			}
		}
		applied = seqRange{from: res.Seq - int64(res.Numbered), to: res.Seq}
		if err := s.completeRefusedErasures(ctx, wtx, b.Changes, refused); err != nil {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		if err := s.reannounce(ctx, wtx, onHeldRows(s.scopeRules(), accepted, held), res); err != nil {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		list, err := s.refusals(ctx, wtx, p, b.Changes, refused)
		if err != nil {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		rec := batchRecord{Applied: res.Won, Conflicts: res.Conflicts, Refused: list}
		data, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		if _, err := tx.ExecContext(ctx, batchRecordSQL,
			p.DeviceID, b.ID, s.cfg.Now().UnixMilli(), string(data)); err != nil {
			return fmt.Errorf("push batch %s: %w", b.ID, err)
		}
		if err := replica.SaveClock(ctx, wtx, s.clock.Last()); err != nil {
			return err
		}
		if err := note.writeTx(ctx, wtx, p.DeviceID); err != nil {
			return err
		}
		resp.Applied, resp.Conflicts, resp.Refused = rec.Applied, rec.Conflicts, rec.Refused
		fresh = &rec
		return nil
	})
	if err != nil {
		return s.recordRefusal(ctx, p, b, err)
	}
	resp.Ack = b.ID
	*own = applied
	if fresh != nil {
		s.metrics.applied.Add(float64(fresh.Applied))
		s.metrics.conflicts.Add(float64(len(fresh.Conflicts)))
		// Each refused row counts as a refusal, as a batch refused
		// whole does.
		for _, r := range fresh.Refused {
			s.metrics.refusals.WithLabelValues(string(r.Code)).Inc()
		}
	}
	return nil
}

// typeReason says in French why the schema refused a value.
func typeReason(code syncproto.Code, column string) string {
	switch code {
	case syncproto.CodeBadValue:
		return "la valeur de " + column + " n'a pas le type attendu, ou elle est trop longue"
	case syncproto.CodeUnknownColumn:
		return "le serveur ne connaît pas la colonne " + column + " : l'application est plus récente que le serveur, prévenez l'administrateur"
	}
	return "cette modification est mal formée (identifiant de fiche ou version invalide) : prévenez l'administrateur"
}

// firstRefusal is the refusal of the row whose first change comes first.
func firstRefusal(refused map[syncproto.RowKey]*rowRefusal) *rowRefusal {
	var first *rowRefusal
	for _, r := range refused {
		if first == nil || r.first < first.first {
			first = r
		}
	}
	return first
}

// withoutRows returns the changes to rows not refused.
func withoutRows(changes []syncproto.Change, refused map[syncproto.RowKey]*rowRefusal) []syncproto.Change {
	if len(refused) == 0 {
		return changes
	}
	out := make([]syncproto.Change, 0, len(changes))
	for _, c := range changes {
		if refused[c.Row()] == nil {
			out = append(out, c)
		}
	}
	return out
}

// refusals lists the refused rows in batch order, each with the columns
// the batch wrote to it and the server's version of those cells, as far
// as the sender may see them (the pull's own filter decides).
func (s *Server) refusals(ctx context.Context, tx *sql.Tx, p auth.Principal, changes []syncproto.Change, refused map[syncproto.RowKey]*rowRefusal) ([]syncproto.Refusal, error) {
	if len(refused) == 0 {
		return nil, nil
	}
	byRow := map[syncproto.RowKey]*syncproto.Refusal{}
	var list []*syncproto.Refusal
	for _, c := range changes {
		k := c.Row()
		r := refused[k]
		if r == nil {
			continue
		}
		out := byRow[k]
		if out == nil {
			out = &syncproto.Refusal{Table: c.Table, PK: c.PK, Code: r.code, Reason: r.reason, Rule: r.rule}
			byRow[k] = out
			list = append(list, out)
		}
		if !slices.Contains(out.Columns, c.Column) {
			out.Columns = append(out.Columns, c.Column)
		}
	}
	view, err := s.scopeRules().Load(ctx, tx, who(p))
	if err != nil {
		return nil, err
	}
	answer := make([]syncproto.Refusal, len(list))
	for i, r := range list {
		cur, err := replica.ReadCells(ctx, tx, s.Schema(), r.Table, r.PK, r.Columns)
		if err != nil {
			return nil, err
		}
		if r.Current, err = view.Filter(ctx, tx, cur, nil); err != nil {
			return nil, err
		}
		answer[i] = *r
	}
	return answer, nil
}

// onHeldRows returns the changes to rows the server held before the
// batch, or all of them when held is nil (not known). Only those can need
// re-announcing: re-announcing renumbers the cells a row had before the
// write, and a row new in this batch has none. A batch of new activities
// is the common push, and re-announcing its rows for nothing cost the
// server CPU on every ingest (BENCHMARKS.md, "Figures behind the code"). A new accompaniment is the
// exception (scope.Rules.Widens): it may bring an older beneficiary into
// a coordinator's view.
func onHeldRows(rules *scope.Rules, changes []syncproto.Change, held scope.HeldRows) []syncproto.Change {
	if held == nil {
		return changes
	}
	var out []syncproto.Change
	for _, c := range changes {
		if held[c.Row()] || rules.Widens(c.Table, c.Column) {
			out = append(out, c)
		}
	}
	return out
}

// deviceNote is what an exchange records of its device for the fleet
// (the coordinators' view): when it was last seen and last caught up,
// what still waits in its outbox, its app, schema and clock.
type deviceNote struct {
	now time.Time
	req *syncproto.SyncRequest
	// written is set once the push's write has recorded the note, with
	// guessed, the caught-up state it assumed, and prevSync, the
	// last_sync_at it replaced (to put back if the guess was wrong).
	written  bool
	guessed  bool
	prevSync sql.NullInt64
}

// pending is what still waits on the device once this exchange is done:
// the count it reported, less the batch acknowledged. Only a push's write
// that succeeds (applied, or answered as already applied) acknowledges
// the batch, so pushed says whether it did.
func (n *deviceNote) pending(pushed bool) int {
	if pushed && n.req.Push != nil {
		return max(0, n.req.Pending-len(n.req.Push.Changes))
	}
	return n.req.Pending
}

// writeTx records the note inside the push's write. Whether the exchange
// leaves the device caught up is guessed from its previous exchange: the
// note set last_sync_at to last_seen_at exactly when that one did. A
// device sending its day's work was caught up the last time and is again;
// one still catching up was not and is not, until its last page.
func (n *deviceNote) writeTx(ctx context.Context, tx *sql.Tx, device string) error {
	var seen sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT last_seen_at, last_sync_at FROM _devices WHERE id = ?", device).Scan(&seen, &n.prevSync)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // no such device (a test's principal): nothing to note
	}
	if err != nil {
		return fmt.Errorf("note device %s: %w", device, err)
	}
	n.guessed = seen.Valid && n.prevSync.Valid && seen.Int64 == n.prevSync.Int64
	if err := n.update(ctx, tx, device, true, n.guessed); err != nil {
		return err
	}
	n.written = true
	return nil
}

// update writes the note; caughtUp sets last_sync_at to now.
func (n *deviceNote) update(ctx context.Context, tx *sql.Tx, device string, pushed, caughtUp bool) error {
	now := n.now.UnixMilli()
	var offset any
	if n.req.Clock > 0 {
		offset = n.req.Clock.Millis() - now
	}
	var lastSync any
	if caughtUp {
		lastSync = now
	}
	_, err := tx.ExecContext(ctx, `UPDATE _devices SET last_seen_at = ?, last_sync_at = COALESCE(?, last_sync_at),
		pending = ?, app_version = ?, schema_version = ?, clock_offset_ms = ? WHERE id = ?`,
		now, lastSync, n.pending(pushed), n.req.AppVersion, n.req.SchemaVersion, offset, device)
	if err != nil {
		return fmt.Errorf("note device %s: %w", device, err)
	}
	return nil
}

// noteAfterPull records what coordinators see of a device in the fleet,
// once the pull has said whether the device is caught up: the whole note
// when the exchange had no push (or its write did not record it), or
// the correction of last_sync_at when the push's write guessed wrong.
// It goes through the group writer, like pushes: every exchange notes
// its device, and a commit of its own would cost every pull an fsync.
func (s *Server) noteAfterPull(ctx context.Context, p auth.Principal, n *deviceNote, caughtUp bool) error {
	if n.written && n.guessed == caughtUp {
		s.notes.done(p.DeviceID, n.now, caughtUp)
		return nil
	}
	if !n.written && !caughtUp && s.notes.recent(p.DeviceID, n.now) {
		return nil
	}
	err := s.writes.Do(ctx, p.DeviceID, 1, func(tx *sql.Tx) error {
		if !n.written {
			return n.update(ctx, tx, p.DeviceID, false, caughtUp)
		}
		// The device has one exchange at a time (handleSync), so no
		// later note of its own can have come in between.
		last := any(n.now.UnixMilli())
		if !caughtUp {
			last = n.prevSync
		}
		if _, err := tx.ExecContext(ctx, "UPDATE _devices SET last_sync_at = ? WHERE id = ?", last, p.DeviceID); err != nil {
			return fmt.Errorf("note device %s: %w", p.DeviceID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("note device %s: %w", p.DeviceID, err)
	}
	s.notes.done(p.DeviceID, n.now, caughtUp)
	return nil
}

// pullNoteEvery is how often a device in the middle of a long pull (a
// first sync: a hundred pages at 50k activities) has its note written
// when its exchanges push nothing. Every note is a commit, and in WAL
// mode a commit empties every reader's page cache: one note per page
// cost a coordinator's first pull a quarter of the server's CPU
// (BENCHMARKS.md section 10). The fleet then sees such a device up to
// this much later than it was; a push, the last page, and the first
// page of a pull that starts later than this after the last note are
// noted as always.
const pullNoteEvery = 30 * time.Second

// pullNotes remembers when this server last wrote the note of each device
// whose pull is not finished (a device caught up is forgotten). Several
// servers on one database each keep their own: a device moving between
// them is noted more often, never less.
type pullNotes struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// maxPullNotes bounds the devices remembered; past it, those not noted
// for pullNoteEvery are forgotten (a device that stopped mid-pull).
const maxPullNotes = 4096

// recent says the device's note was written less than pullNoteEvery
// before now, in the middle of its pull.
func (m *pullNotes) recent(device string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.last[device]
	return ok && now.Sub(t) < pullNoteEvery && !now.Before(t)
}

// done records that the device's note was written at now; caughtUp
// forgets it.
func (m *pullNotes) done(device string, now time.Time, caughtUp bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if caughtUp {
		delete(m.last, device)
		return
	}
	if m.last == nil {
		m.last = map[string]time.Time{}
	}
	if len(m.last) >= maxPullNotes {
		for d, t := range m.last {
			if now.Sub(t) >= pullNoteEvery {
				delete(m.last, d)
			}
		}
	}
	m.last[device] = now
}

func withIndex(err error, i int) error {
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		return pe.With(syncproto.DetailIndex, i)
	}
	return err
}

// recordRefusal keeps, for a batch refused by the state of the data
// (invalid_row, forbidden_scope) or by the time (clock_ahead), its refusal
// in _refused_batches, so that the first verdict on a batch id is final like an
// acknowledgement is. Found by the reliability tests: a refused batch
// replayed by the network once the rule held again was applied, although
// its device had set it aside as refused and forgotten its cells; and a
// batch refused as too far ahead, replayed once the server's time had
// passed its stamps, was applied although its device had stamped those
// writes again (after its date was set right) and written newer ones,
// which the old stamps then beat. It returns err.
func (s *Server) recordRefusal(ctx context.Context, p auth.Principal, b *syncproto.Batch, err error) error {
	var pe *syncproto.Error
	if !errors.As(err, &pe) || (pe.Code != syncproto.CodeInvalidRow && pe.Code != syncproto.CodeForbiddenScope && pe.Code != syncproto.CodeClockAhead) {
		return err
	}
	data, merr := json.Marshal(pe)
	if merr != nil {
		return errors.Join(err, fmt.Errorf("record refusal of batch %s: %w", b.ID, merr))
	}
	if _, werr := s.db.W.ExecContext(ctx, "INSERT INTO _refused_batches (device_id, id, refused_at, error) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
		p.DeviceID, b.ID, s.cfg.Now().UnixMilli(), string(data)); werr != nil {
		return errors.Join(err, fmt.Errorf("record refusal of batch %s: %w", b.ID, werr))
	}
	return err
}

// refusedBefore answers a replayed refused batch with its first refusal
// (see recordRefusal). A clock_ahead refusal carries the server's time as
// it is now, which is what a device compares its own clock with before
// stamping its writes again.
func (s *Server) refusedBefore(ctx context.Context, tx *preparedTx, p auth.Principal, b *syncproto.Batch) error {
	var stored string
	err := tx.QueryRowContext(ctx, batchRefusedSQL, p.DeviceID, b.ID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("push batch %s: %w", b.ID, err)
	}
	var pe syncproto.Error
	if err := json.Unmarshal([]byte(stored), &pe); err != nil {
		return fmt.Errorf("push batch %s: stored refusal: %w", b.ID, err)
	}
	if pe.Code != syncproto.CodeClockAhead {
		return &pe
	}
	fresh := pe
	fresh.Details = map[string]any{}
	for k, v := range pe.Details {
		fresh.Details[k] = v
	}
	fresh.Details[syncproto.DetailServerTime] = s.cfg.Now().UnixMilli()
	return &fresh
}

// completeRefusedErasures erases, as the server, each beneficiary whose
// row was refused for a domain rule although the batch erased it: the
// erasure and an unrelated edit that breaks a rule (an older app writing
// a birth year the rules no longer allow) travel as one row, and refusing
// the row would throw the erasure away with the edit. Erasure must win
// whatever comes with it, so the server completes it, as it does when an
// erasure meets a concurrent edit; the device gets the erased row back
// as the refusal's current values and keeps the rest of her row in its
// rejected list. A row refused for its scope is not the sender's to
// erase, and a row the server never had has nothing to erase.
func (s *Server) completeRefusedErasures(ctx context.Context, tx *sql.Tx, changes []syncproto.Change, refused map[syncproto.RowKey]*rowRefusal) error {
	for k, r := range refused {
		if r.code != syncproto.CodeInvalidRow || k.Table != "beneficiaire" || !domain.Erases(changes, k.PK) {
			continue
		}
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM beneficiaire WHERE id = ?", k.PK).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("refused erasure of %s: %w", k.PK, err)
		}
		if err := s.eraseTx(ctx, tx, k.PK); err != nil {
			return err
		}
	}
	return nil
}
