package replica

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

// Options says what kind of replica is being written.
type Options struct {
	// AssignSeq gives every row that changes the next pull sequence
	// number (the server does; devices do not serve pulls).
	AssignSeq bool
	// RecordConflicts writes concurrent writes that lost to _conflicts.
	// Only the server does: it sees every write, so its log is complete
	// and each conflict is recorded once.
	RecordConflicts bool
	// Now stamps recorded conflicts; time.Now when nil.
	Now func() time.Time
	// Prepared, when set, holds statements already prepared on the
	// writer connection, which Apply uses instead of preparing its own.
	Prepared *Prepared
	// Owners names, for each table whose rows belong to someone, the
	// column holding the owner. The row's version record carries the
	// owner (interned in _owners), so that a pull can read one person's
	// rows by index (see ReadOwned). The server sets it; devices, which
	// serve no pulls, leave it nil.
	Owners map[string]string
	// Pending, on a device, returns the versions of the device's own
	// writes not acknowledged yet (its outbox) for some rows: they are
	// held versions too, newer than the row's record when they win (see
	// LAYOUT in doc.go). Nil on the server.
	Pending func(ctx context.Context, tx *sql.Tx, rows []syncproto.RowKey) (map[syncproto.RowKey]map[string]syncproto.Version, error)
	// VersionsOnly records the changes' versions in the rows' records
	// and touches no value: a device acknowledging its own writes, whose
	// values its domain tables already hold.
	VersionsOnly bool
	// Shared says other processes write the same database at the same
	// time (several servers on one PostgreSQL). Apply then writes nothing
	// before it holds the sequence lock (a name new to the dictionaries
	// takes it early), and checks under it that the records it read
	// before are still those held, deciding again if not: two servers
	// merging into one row never write over each other's cells.
	Shared bool
	// Draw reserves n sequence numbers in tx and returns the first (n ==
	// 0: only the lock); the server on PostgreSQL passes pgstore.NextSeq.
	// Nil draws from the counter row of _replica, incremented in tx.
	Draw func(ctx context.Context, tx *sql.Tx, n int64) (int64, error)
}

// Result says what applying a batch did.
type Result struct {
	Won        int // cells whose value changed
	Lost       int // cells older than the version held
	Duplicates int // cells already held at exactly this version
	// KeptAside counts cells of tables or columns this replica's schema
	// does not have yet: their versions are kept in the row's record and
	// their values in its extra values, materialised when a migration
	// adds the column.
	KeptAside int
	Conflicts []syncproto.ConflictReport
	// Seq is the last sequence number given out, when AssignSeq is set.
	Seq int64
	// Numbered is how many rows were given a sequence number (one each,
	// the last Numbered numbers up to Seq), when AssignSeq is set.
	Numbered int
	// Rows is how many rows the changes touch, Fresh how many of them
	// were new to this replica (no record, no pending write, hence no
	// value of theirs ever stored here): a device need not empty its
	// write-ahead log after an erasure that only brought rows it never
	// held.
	Rows, Fresh int
}

// rowState is one touched row during an Apply.
type rowState struct {
	key        syncproto.RowKey
	rec        *record
	pending    map[string]syncproto.Version
	fresh      bool // no record and no pending write: no domain row either
	wasDeleted bool
	seq        int64
	won        map[string]any // winning values, by column
	domain     map[string]any // the domain row as held before, read on demand
	domainRead bool
	heldSeq    sql.NullInt64 // the record's number as read (Options.Shared checks it)
}

// Apply merges changes into the replica inside tx. Changes must already
// have passed Schema.Check where the caller requires known columns (the
// server does; a device keeps unknown columns aside). Apply is
// idempotent: applying the same changes again changes nothing.
//
// Sequence numbers are drawn late (Options.Draw): after the rows'
// records were read and every cell decided, just before anything is
// written. With several writers on one database (Options.Shared) the
// draw locks the counter until tx ends, and the records read before it
// are checked again under that lock: when another writer changed one in
// between, the decisions are taken again, locked this time.
func Apply(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, changes []syncproto.Change, opt Options) (Result, error) {
	if len(changes) == 0 {
		return Result{}, nil
	}
	// Statements below run without the caller's cancellation: go-sqlite3
	// starts a goroutine per statement to watch a cancellable context,
	// which costs more than a row's insert. The transaction still obeys
	// ctx, and one Apply is bounded by the size of a batch or page.
	ctx = context.WithoutCancel(ctx)
	st := newStmts(tx)
	st.pre = opt.Prepared
	defer st.close()
	a := &applier{tx: tx, st: st, schema: schema, changes: changes, opt: opt, now: opt.Now}
	if a.now == nil {
		a.now = time.Now
	}
	for attempt := 0; ; attempt++ {
		res, again, err := a.run(ctx)
		if err != nil || !again {
			return res, err
		}
		if attempt > 0 {
			// The second attempt runs under the lock: nobody else can
			// have changed what it read.
			return res, fmt.Errorf("merge: records changed under the sequence lock")
		}
	}
}

// applier is one Apply: its inputs, and whether it holds the sequence
// lock yet (Options.Shared).
type applier struct {
	tx      *sql.Tx
	st      *stmts
	schema  *syncproto.Schema
	changes []syncproto.Change
	opt     Options
	now     func() time.Time
	locked  bool
}

// draw reserves n sequence numbers in tx (n == 0: only the lock) and
// returns the first.
func (a *applier) draw(ctx context.Context, n int64) (int64, error) {
	a.locked = true
	if a.opt.Draw != nil {
		return a.opt.Draw(ctx, a.tx, n)
	}
	return drawSeq(ctx, a.tx, n)
}

// drawSeq is the default Options.Draw: the counter row of _replica,
// incremented in tx, which holds it until tx ends (pgstore.NextSeq runs
// the same statement on PostgreSQL).
func drawSeq(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, "UPDATE _replica SET seq = seq + ? WHERE id = 1 RETURNING seq", n).Scan(&last); err != nil {
		return 0, fmt.Errorf("merge: draw sequence numbers: %w", err)
	}
	return last - n + 1, nil
}

// pendingConflict is a conflict to record once the cells are decided.
type pendingConflict struct {
	cell            syncproto.Cell
	winVal, loseVal any
	winVer, loseVer syncproto.Version
}

// run is one attempt at Apply. again says the records read changed before
// the lock was taken: nothing was written, and run must be called again.
func (a *applier) run(ctx context.Context) (res Result, again bool, err error) {
	tx, st, schema, opt := a.tx, a.st, a.schema, a.opt
	d, err := loadDict(ctx, tx)
	if err != nil {
		return res, false, err
	}
	if opt.Shared && !a.locked {
		// A name new to the dictionaries is written under the lock, and
		// the dictionaries read again once it is held: another writer
		// may have numbered names in between.
		missing, err := d.missing(ctx, a.changes, opt.Owners)
		if err != nil {
			return res, false, err
		}
		if missing {
			if _, err := a.draw(ctx, 0); err != nil {
				return res, false, err
			}
			if d, err = loadDict(ctx, tx); err != nil {
				return res, false, err
			}
		}
	}
	var newest int64
	var numbered int64
	var conflicts []pendingConflict
	states, order, err := loadStates(ctx, tx, st, d, a.changes, opt)
	if err != nil {
		return res, false, err
	}
	res.Rows = len(order)
	for _, s := range states {
		if s.fresh {
			res.Fresh++
		}
	}

	for i := range a.changes {
		c := &a.changes[i]
		val := plain(c.Value)
		k := c.Row()
		s := states[k]
		bit, err := d.column(ctx, s.rec.tbl, c.Column)
		if err != nil {
			return res, false, err
		}
		var heldVer syncproto.Version
		if cl, ok := s.rec.clock(bit); ok {
			heldVer = d.version(cl)
		}
		if pv, ok := s.pending[c.Column]; ok && pv.Beats(heldVer) {
			heldVer = pv
		}

		dec := syncproto.Decide(heldVer, c.Version, c.Prev)
		concurrent := dec.Concurrent && opt.RecordConflicts
		switch dec.Outcome {
		case syncproto.Duplicate:
			res.Duplicates++
			continue
		case syncproto.Lost:
			res.Lost++
			if concurrent {
				heldVal, err := s.value(ctx, tx, schema, c.Column)
				if err != nil {
					return res, false, err
				}
				conflicts = append(conflicts, pendingConflict{cell: c.Cell(), winVal: heldVal, winVer: heldVer, loseVal: val, loseVer: c.Version})
				res.Conflicts = append(res.Conflicts, syncproto.ConflictReport{Cell: c.Cell(), Winner: heldVer, Loser: c.Version})
			}
			continue
		}

		var heldVal any
		if concurrent {
			if heldVal, err = s.value(ctx, tx, schema, c.Column); err != nil {
				return res, false, err
			}
		}
		if opt.AssignSeq && s.seq == 0 {
			// A provisional number, below zero, until the draw.
			numbered++
			s.seq = -numbered
		}
		nid, err := d.node(ctx, c.Version.Node)
		if err != nil {
			return res, false, err
		}
		s.rec.setClock(colClock{bit: bit, hlc: int64(c.Version.HLC), node: nid, seq: s.seq})
		newest = max(newest, int64(c.Version.HLC))
		if !opt.VersionsOnly {
			if c.Column == syncproto.DeletedColumn {
				s.rec.deleted = isOne(val)
			}
			if s.won == nil {
				s.won = map[string]any{}
			}
			s.won[c.Column] = val
		}
		if col, owned := opt.Owners[c.Table]; owned && col == c.Column {
			s.rec.owner = sql.NullInt64{}
			if tag := ownerTag(val); tag != nil {
				id, err := d.owner(ctx, tag.(string))
				if err != nil {
					return res, false, err
				}
				s.rec.owner = sql.NullInt64{Int64: id, Valid: true}
			}
		}
		res.Won++
		if concurrent {
			conflicts = append(conflicts, pendingConflict{cell: c.Cell(), winVal: val, winVer: c.Version, loseVal: heldVal, loseVer: heldVer})
			res.Conflicts = append(res.Conflicts, syncproto.ConflictReport{Cell: c.Cell(), Winner: c.Version, Loser: heldVer})
		}
		if _, known := schema.ColumnType(c.Table, c.Column); !known {
			res.KeptAside++
		}
	}

	// Everything is decided: draw the numbers, as late as can be, and
	// write.
	writes := numbered > 0 || len(conflicts) > 0 || newest > 0
	if opt.Shared && writes && !a.locked {
		first, err := a.draw(ctx, numbered)
		if err != nil {
			return res, false, err
		}
		stale, err := staleRecords(ctx, tx, states, order)
		if err != nil {
			return res, false, err
		}
		if stale {
			// The numbers drawn are left unused: a gap, which cursors
			// step over.
			return Result{}, true, nil
		}
		res.Seq, res.Numbered = numberRows(states, order, first, numbered)
	} else if opt.AssignSeq && numbered > 0 {
		first, err := a.draw(ctx, numbered)
		if err != nil {
			return res, false, err
		}
		res.Seq, res.Numbered = numberRows(states, order, first, numbered)
	}
	for _, c := range conflicts {
		if err := recordConflict(ctx, tx, c.cell, c.winVal, c.winVer, c.loseVal, c.loseVer, a.now()); err != nil {
			return res, false, err
		}
	}

	// The clock never goes below a version held (invariant 4): with
	// versions packed in records, keeping it here costs less than
	// searching them all when the replica opens.
	if newest > 0 {
		if _, err := tx.ExecContext(ctx, "UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1", newest); err != nil {
			return res, false, fmt.Errorf("merge: save clock: %w", err)
		}
	}
	recs := &recordWriter{st: st}
	newRows := &rowWriter{st: st}
	for _, k := range order {
		s := states[k]
		if !s.rec.dirty {
			continue
		}
		if !opt.VersionsOnly && s.won != nil {
			if err := s.materialise(ctx, tx, st, schema, newRows); err != nil {
				return res, false, err
			}
		}
		if err := recs.add(ctx, s.rec); err != nil {
			return res, false, err
		}
	}
	if err := recs.flush(ctx); err != nil {
		return res, false, err
	}
	if err := newRows.flushAll(ctx); err != nil {
		return res, false, err
	}
	return res, false, nil
}

// numberRows turns the provisional numbers (-1, -2…, in the order the
// rows first won a cell) into the drawn ones, first onwards, and returns
// the last and how many.
func numberRows(states map[syncproto.RowKey]*rowState, order []syncproto.RowKey, first, n int64) (int64, int) {
	if n == 0 {
		return 0, 0
	}
	for _, k := range order {
		s := states[k]
		if s.seq >= 0 {
			continue
		}
		s.seq = first - s.seq - 1
		s.rec.seq = sql.NullInt64{Int64: s.seq, Valid: true}
		for i := range s.rec.clocks {
			if s.rec.clocks[i].seq < 0 {
				s.rec.clocks[i].seq = s.seq
			}
		}
	}
	return first + n - 1, int(n)
}

// staleRecords says whether a record read before the sequence lock was
// taken has changed since: a row another writer numbered, or created.
// Every change to a server's record gives it a new number, so the
// numbers tell.
func staleRecords(ctx context.Context, tx *sql.Tx, states map[syncproto.RowKey]*rowState, order []syncproto.RowKey) (bool, error) {
	byTable := map[int64][]*rowState{}
	var tables []int64
	for _, k := range order {
		s := states[k]
		if _, ok := byTable[s.rec.tbl]; !ok {
			tables = append(tables, s.rec.tbl)
		}
		byTable[s.rec.tbl] = append(byTable[s.rec.tbl], s)
	}
	for _, tbl := range tables {
		list := byTable[tbl]
		pks := make([]string, len(list))
		for i, s := range list {
			pks[i] = s.key.PK
		}
		now := map[string]*record{}
		if err := loadRecords(ctx, tx, tbl, pks, now); err != nil {
			return false, err
		}
		for _, s := range list {
			r := now[s.key.PK]
			switch {
			case r == nil && !s.rec.held:
			case r == nil || !s.rec.held:
				return true, nil
			case r.seq != s.heldSeq:
				return true, nil
			}
		}
	}
	return false, nil
}

// loadStates reads the record of every row the changes touch (a query
// per table and few hundred rows), and the device's pending writes.
func loadStates(ctx context.Context, tx *sql.Tx, st *stmts, d *dict, changes []syncproto.Change, opt Options) (map[syncproto.RowKey]*rowState, []syncproto.RowKey, error) {
	states := map[syncproto.RowKey]*rowState{}
	var order []syncproto.RowKey
	pks := map[string][]string{}
	var tables []string
	for i := range changes {
		k := changes[i].Row()
		if _, ok := states[k]; ok {
			continue
		}
		states[k] = &rowState{key: k}
		order = append(order, k)
		if _, ok := pks[k.Table]; !ok {
			tables = append(tables, k.Table)
		}
		pks[k.Table] = append(pks[k.Table], k.PK)
	}
	nodes := map[int64]bool{}
	for _, table := range tables {
		tid, err := d.table(ctx, table)
		if err != nil {
			return nil, nil, err
		}
		recs := make(map[string]*record, len(pks[table]))
		if err := loadRecords(ctx, tx, tid, pks[table], recs); err != nil {
			return nil, nil, err
		}
		for _, pk := range pks[table] {
			s := states[syncproto.RowKey{Table: table, PK: pk}]
			s.rec = recs[pk]
			if s.rec == nil {
				// Room for every column numbered: a row new to the
				// replica usually arrives whole, and clocks grown
				// column by column were a tenth of a first sync's
				// allocations.
				s.rec = &record{tbl: tid, pk: pk, clocks: make([]colClock, 0, max(len(d.colNames[tid]), 4))}
			}
			s.wasDeleted = s.rec.deleted
			s.heldSeq = s.rec.seq
			for _, c := range s.rec.clocks {
				nodes[c.node] = true
			}
		}
	}
	if err := d.resolve(ctx, nodes, nil); err != nil {
		return nil, nil, err
	}
	if opt.Pending != nil {
		pend, err := opt.Pending(ctx, tx, order)
		if err != nil {
			return nil, nil, fmt.Errorf("merge: pending writes: %w", err)
		}
		for k, p := range pend {
			if s := states[k]; s != nil {
				s.pending = p
			}
		}
	}
	for _, s := range states {
		s.fresh = !s.rec.held && len(s.pending) == 0
	}
	return states, order, nil
}

// value is a cell's value as held before this Apply wrote it, or as
// won earlier in this Apply: from the domain row of a live row, from the
// record's extra values otherwise.
func (s *rowState) value(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, col string) (any, error) {
	if v, ok := s.won[col]; ok {
		return v, nil
	}
	if col == syncproto.DeletedColumn {
		if _, ok := s.rec.clock(DeletedBit); !ok {
			return nil, nil
		}
		if s.wasDeleted {
			return int64(1), nil
		}
		return int64(0), nil
	}
	t := schema.Tables[s.key.Table]
	if _, known := schema.ColumnType(s.key.Table, col); !known || s.wasDeleted || t == nil {
		m, err := s.rec.extraVals()
		if err != nil {
			return nil, err
		}
		return m[col], nil
	}
	if !s.domainRead {
		row, err := readDomainRow(ctx, tx, t, s.key.PK)
		if err != nil {
			return nil, err
		}
		s.domain, s.domainRead = row, true
	}
	return s.domain[col], nil
}

// readDomainRow reads every column of one domain row (nil when absent).
func readDomainRow(ctx context.Context, q execQueryer, t *syncproto.Table, pk string) (map[string]any, error) {
	names := t.ColumnNames()
	vals := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	qs := make([]string, len(names))
	for i, n := range names {
		qs[i] = quote(n)
	}
	if len(names) == 0 {
		return map[string]any{}, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(qs, ", ")+" FROM "+quote(t.Name)+" WHERE id = ?", pk)
	if err != nil {
		return nil, fmt.Errorf("merge: read row %s %s: %w", t.Name, pk, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("merge: read row %s %s: %w", t.Name, pk, err)
	}
	out := make(map[string]any, len(names))
	for i, n := range names {
		out[n] = sqlValue(vals[i])
	}
	return out, rows.Err()
}

// sqlValue turns a value read from SQLite into what a change carries.
func sqlValue(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// materialise brings the domain row and the record's extra values in
// line with the values that won. A live row keeps its values in the
// domain table; a deleted one in its record's extra values, so that an
// explicit re-creation (a newer tombstone saying 0) brings them back;
// columns the schema does not know are always in the extra values.
func (s *rowState) materialise(ctx context.Context, tx *sql.Tx, st *stmts, schema *syncproto.Schema, newRows *rowWriter) error {
	t := schema.Tables[s.key.Table]
	if t != nil && s.fresh && !s.rec.deleted {
		// A row new to the replica (the whole of a first sync): its
		// cells go to the domain table as they won, every column named
		// (rowWriter takes the table's columns and leaves out the
		// tombstone), unknown ones beside the versions.
		recreated, known := false, 0
		for col, v := range s.won {
			if col == syncproto.DeletedColumn {
				recreated = true
				continue
			}
			if _, ok := t.Columns[col]; ok {
				known++
				continue
			}
			if err := s.rec.setExtra(col, v); err != nil {
				return err
			}
		}
		if known == 0 && !recreated {
			return nil
		}
		return newRows.add(ctx, t, s.key.PK, s.won)
	}
	known := make(map[string]any, len(s.won))
	for col, v := range s.won {
		if col == syncproto.DeletedColumn {
			continue
		}
		if _, ok := schema.ColumnType(s.key.Table, col); ok && t != nil {
			known[col] = v
			continue
		}
		if err := s.rec.setExtra(col, v); err != nil {
			return err
		}
	}
	if t == nil {
		return nil
	}
	now := s.rec.deleted
	switch {
	case !s.wasDeleted && !now:
		_, recreated := s.won[syncproto.DeletedColumn]
		if s.fresh {
			if len(known) == 0 && !recreated {
				return nil
			}
			return newRows.add(ctx, t, s.key.PK, wholeRow(t, known))
		}
		if len(known) == 0 && !recreated {
			return nil
		}
		return upsert(ctx, st, t, s.key.PK, known)
	case !s.wasDeleted && now:
		row := map[string]any{}
		if !s.fresh {
			held, err := readDomainRow(ctx, tx, t, s.key.PK)
			if err != nil {
				return err
			}
			if held != nil {
				row = held
			}
		}
		for c, v := range known {
			row[c] = v
		}
		for c, v := range row {
			if v == nil {
				continue
			}
			if err := s.rec.setExtra(c, v); err != nil {
				return err
			}
		}
		if s.fresh {
			return nil
		}
		del, err := st.prepare(ctx, deleteSQL(t))
		if err == nil {
			_, err = del.ExecContext(ctx, s.key.PK)
		}
		if err != nil {
			return fmt.Errorf("merge: delete %s %s: %w", s.key.Table, s.key.PK, err)
		}
		return nil
	case s.wasDeleted && now:
		for c, v := range known {
			if err := s.rec.setExtra(c, v); err != nil {
				return err
			}
		}
		return nil
	default: // re-created
		m, err := s.rec.extraVals()
		if err != nil {
			return err
		}
		row := map[string]any{}
		for c := range t.Columns {
			if v, ok := m[c]; ok {
				row[c] = v
				delete(m, c)
				s.rec.dirty = true
			}
		}
		for c, v := range known {
			row[c] = v
		}
		return upsert(ctx, st, t, s.key.PK, wholeRow(t, row))
	}
}

// ownerTag is the text a row's owner is recorded by (see
// syncproto.ValueText, which the scope rules compare owners by), nil for
// none.
func ownerTag(v any) any {
	if v == nil {
		return nil
	}
	return syncproto.ValueText(v)
}

// recordWriter writes version records a chunk at a time (see chunkFor).
type recordWriter struct {
	st   *stmts
	args []any
	n    int
	pk   string // the first buffered row, to name it in an error
}

var recordChunks = []int{64, 8, 1}

const recordArgs = 8

func (w *recordWriter) add(ctx context.Context, r *record) error {
	extra, err := r.extraArg()
	if err != nil {
		return err
	}
	var deleted int64
	if r.deleted {
		deleted = 1
	}
	var newest int64
	for _, c := range r.clocks {
		newest = max(newest, c.hlc)
	}
	w.args = append(w.args, r.tbl, PKArg(r.pk), r.owner, r.seq, deleted, newest, encodeClocks(r.clocks), extra)
	if w.n == 0 {
		w.pk = r.pk
	}
	w.n++
	if w.n < recordChunks[0] {
		return nil
	}
	return w.flush(ctx)
}

func (w *recordWriter) flush(ctx context.Context) error {
	for w.n > 0 {
		n := chunkFor(recordChunks, w.n)
		q, err := w.st.prepare(ctx, putRecordsSQL(n))
		if err == nil {
			_, err = q.ExecContext(ctx, w.args[:n*recordArgs]...)
		}
		if err != nil {
			return fmt.Errorf("merge: write versions of %d rows from %s: %w", n, w.pk, err)
		}
		w.args = w.args[n*recordArgs:]
		w.n -= n
	}
	w.args = w.args[:0]
	return nil
}

// The statements Apply runs, as text: Prepared.Warm prepares the same.
// They are plain SQL that PostgreSQL runs as well (ON CONFLICT ... DO
// UPDATE, excluded).
const (
	recordTuple  = "(?, ?, ?, ?, ?, ?, ?, ?)"
	putRecordSQL = `INSERT INTO _rows (tbl, pk, owner, seq, deleted, hlc, clocks, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk) DO UPDATE SET owner = excluded.owner, seq = excluded.seq, deleted = excluded.deleted, hlc = excluded.hlc, clocks = excluded.clocks, extra = excluded.extra`
)

var putRecordsTexts = func() map[int]string {
	m := map[int]string{1: putRecordSQL}
	for _, n := range recordChunks {
		if n > 1 {
			m[n] = multiRow(putRecordSQL, recordTuple, n)
		}
	}
	return m
}()

func putRecordsSQL(n int) string {
	if q, ok := putRecordsTexts[n]; ok {
		return q
	}
	return multiRow(putRecordSQL, recordTuple, n)
}

// plain turns a decoded JSON number into the int64 or float64 SQLite
// should store; Schema.Check already did this for known columns, and
// cells kept aside need it too.
func plain(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

// rowChunks are the chunk sizes new domain rows are written by.
var rowChunks = []int{32, 8, 1}

// wholeRow returns the values of a row written for the first time: every
// column of the table, NULL where no cell arrived. Writing the same
// column list for every new row of a table lets one prepared statement
// serve them all, instead of one per combination of present columns.
func wholeRow(t *syncproto.Table, won map[string]any) map[string]any {
	if t == nil {
		return won
	}
	all := make(map[string]any, len(t.Columns)+1)
	for c := range t.Columns {
		all[c] = nil
	}
	for c, v := range won {
		all[c] = v
	}
	return all
}

// isOne reports whether a tombstone value says "deleted".
func isOne(v any) bool {
	switch x := v.(type) {
	case int64:
		return x == 1
	case float64:
		return x == 1
	case []byte:
		return string(x) == "1"
	case string:
		return x == "1"
	}
	return false
}

// stmts caches the statements of one transaction by their text. Preparing
// an upsert on a domain table compiles every trigger of the table into it,
// which on a device (capture and rule triggers) costs far more than
// running it: each shape of statement is prepared once per Apply.
type stmts struct {
	tx  *sql.Tx
	pre *Prepared // statements prepared across transactions, if any
	m   map[string]*sql.Stmt
}

func newStmts(tx *sql.Tx) *stmts { return &stmts{tx: tx, m: map[string]*sql.Stmt{}} }

func (s *stmts) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if p, ok := s.m[query]; ok {
		return p, nil
	}
	if parent := s.pre.lookup(query); parent != nil {
		p := s.tx.StmtContext(ctx, parent)
		s.m[query] = p
		return p, nil
	}
	p, err := s.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.m[query] = p
	return p, nil
}

func (s *stmts) close() {
	for _, p := range s.m {
		p.Close()
	}
}

func upsert(ctx context.Context, st *stmts, t *syncproto.Table, pk string, cols map[string]any) error {
	names := make([]string, 0, len(cols))
	for n := range cols {
		if n != syncproto.DeletedColumn {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	args := make([]any, 0, len(names)+1)
	args = append(args, pk)
	for _, n := range names {
		args = append(args, cols[n])
	}
	q, err := st.prepare(ctx, upsertSQL(t, names))
	if err == nil {
		_, err = q.ExecContext(ctx, args...)
	}
	if err != nil {
		return fmt.Errorf("merge: write row %s %s: %w", t.Name, pk, err)
	}
	return nil
}

// chunkFor is the largest chunk size not above n.
func chunkFor(sizes []int, n int) int {
	for _, s := range sizes {
		if s <= n {
			return s
		}
	}
	return 1
}

// rowWriter buffers rows new to the replica, each with every column of
// its table (see wholeRow), and writes them per table in chunks.
type rowWriter struct {
	st     *stmts
	tables []*syncproto.Table // in first-buffered order
	rows   map[string]*rowBuf
}

type rowBuf struct {
	names []string // the table's columns, sorted
	args  []any
	pks   []string
}

func (w *rowWriter) add(ctx context.Context, t *syncproto.Table, pk string, cols map[string]any) error {
	if w.rows == nil {
		w.rows = map[string]*rowBuf{}
	}
	b := w.rows[t.Name]
	if b == nil {
		b = &rowBuf{names: t.ColumnNames()}
		w.rows[t.Name] = b
		w.tables = append(w.tables, t)
	}
	b.args = append(b.args, pk)
	for _, c := range b.names {
		b.args = append(b.args, cols[c])
	}
	b.pks = append(b.pks, pk)
	if len(b.pks) < rowChunks[0] {
		return nil
	}
	return w.flush(ctx, t, b)
}

func (w *rowWriter) flush(ctx context.Context, t *syncproto.Table, b *rowBuf) error {
	per := len(b.names) + 1
	for len(b.pks) > 0 {
		n := chunkFor(rowChunks, len(b.pks))
		q, err := w.st.prepare(ctx, newRowsSQL(t, b.names, n))
		if err == nil {
			_, err = q.ExecContext(ctx, b.args[:n*per]...)
		}
		if err != nil {
			return fmt.Errorf("merge: write %d new rows of %s from %s: %w", n, t.Name, b.pks[0], err)
		}
		b.args = b.args[n*per:]
		b.pks = b.pks[n:]
	}
	b.args, b.pks = b.args[:0], b.pks[:0]
	return nil
}

func (w *rowWriter) flushAll(ctx context.Context) error {
	for _, t := range w.tables {
		if err := w.flush(ctx, t, w.rows[t.Name]); err != nil {
			return err
		}
	}
	return nil
}

// newRowsSQL writes n new rows of t, every column given (names sorted):
// the text of upsertSQL with n rows of values.
func newRowsSQL(t *syncproto.Table, names []string, n int) string {
	one := upsertSQL(t, names)
	if n == 1 {
		return one
	}
	return multiRow(one, "(?"+strings.Repeat(", ?", len(names))+")", n)
}

// multiRow repeats the first VALUES tuple of a single-row INSERT n times.
func multiRow(single, tuple string, n int) string {
	i := strings.Index(single, tuple)
	if i < 0 {
		panic("replica: no values tuple in " + single)
	}
	var b strings.Builder
	b.Grow(len(single) + (n-1)*(len(tuple)+2))
	b.WriteString(single[:i])
	for j := range n {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	b.WriteString(single[i+len(tuple):])
	return b.String()
}

func deleteSQL(t *syncproto.Table) string { return "DELETE FROM " + quote(t.Name) + " WHERE id = ?" }

// upsertSQL writes the given columns (sorted) of one row of t.
func upsertSQL(t *syncproto.Table, names []string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(quote(t.Name))
	b.WriteString(" (id")
	for _, n := range names {
		b.WriteString(", ")
		b.WriteString(quote(n))
	}
	b.WriteString(") VALUES (?")
	b.WriteString(strings.Repeat(", ?", len(names)))
	b.WriteString(") ON CONFLICT (id) DO ")
	if len(names) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET ")
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(n) + " = excluded." + quote(n))
		}
	}
	return b.String()
}

func recordConflict(ctx context.Context, tx *sql.Tx, cell syncproto.Cell, winVal any, win syncproto.Version, loseVal any, lose syncproto.Version, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO _conflicts
		(tbl, pk, col, winner_val, winner_hlc, winner_node, loser_val, loser_hlc, loser_node, detected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		cell.Table, cell.PK, cell.Column, winVal, int64(win.HLC), win.Node, loseVal, int64(lose.HLC), lose.Node, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("merge: record conflict on %s.%s: %w", cell.Table, cell.Column, err)
	}
	return nil
}
