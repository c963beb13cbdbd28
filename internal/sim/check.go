package sim

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/replica"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/syncproto"
)

// checkOutboxes runs after every step: no outbox may still hold a batch
// whose acknowledgement reached its device, since the SDK drops the batch
// in the same transaction that applies the answer.
func (w *World) checkOutboxes() error {
	for _, d := range w.devs {
		rows, err := d.db().QueryContext(w.ctx, "SELECT DISTINCT batch FROM _outbox WHERE batch IS NOT NULL")
		if err != nil {
			return fmt.Errorf("read outbox of %s: %w", d.name, err)
		}
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return fmt.Errorf("read outbox of %s: %w", d.name, err)
			}
			if d.ackSeen[b] {
				w.violate("after step %d, %s's outbox still holds batch %s, whose ack it received", w.step, d.name, b)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read outbox of %s: %w", d.name, err)
		}
	}
	return nil
}

// checkFinal checks the invariants at quiescence.
func (w *World) checkFinal() error {
	ctx := w.ctx
	sdb := w.srv.DB().R

	// Nothing waits anywhere. Changes the server refused (a domain rule
	// broken by concurrent writes, such as notes written offline about a
	// beneficiary erased meanwhile) are kept aside in _rejected: they
	// were never acknowledged, and the replicas must converge without
	// them.
	for _, d := range w.devs {
		var pending int
		if err := d.db().QueryRowContext(ctx, "SELECT COUNT(*) FROM _outbox").Scan(&pending); err != nil {
			return fmt.Errorf("count outbox of %s: %w", d.name, err)
		}
		if pending > 0 {
			w.violate("%s ends with %d changes in its outbox", d.name, pending)
		}
	}

	// Every replica holds the same tables and the same cell versions as
	// the server.
	schema := w.srv.Schema()
	want, wantText, err := relaistest.DumpReplica(ctx, sdb, schema)
	if err != nil {
		return fmt.Errorf("dump server: %w", err)
	}
	for _, d := range w.devs {
		got, gotText, err := relaistest.DumpReplica(ctx, d.db(), schema)
		if err != nil {
			return fmt.Errorf("dump %s: %w", d.name, err)
		}
		want, wantText := want, wantText
		if d.owner != "" {
			// The conseillère holds exactly her rows: those whose owner
			// cell names her on the server.
			if want, wantText, err = relaistest.DumpOwned(ctx, sdb, schema, d.owner); err != nil {
				return fmt.Errorf("dump server for %s: %w", d.name, err)
			}
		}
		if got != want {
			w.violate("%s differs from the server: %s", d.name, relaistest.FirstDiff(wantText, gotText))
		}
	}

	// Every acknowledged write is the cell's current version, or was
	// overwritten by a write made after seeing it, or is in the conflict
	// log as a concurrent write that lost.
	successors := map[syncproto.Cell]map[syncproto.Version]bool{}
	acked := 0
	for _, b := range w.batches {
		if b.answer == nil {
			continue
		}
		acked++
		for _, c := range b.changes {
			if b.refused[c.Row()] {
				continue // never applied: nothing followed it on the server
			}
			m := successors[c.Cell()]
			if m == nil {
				m = map[syncproto.Version]bool{}
				successors[c.Cell()] = m
			}
			m[c.Prev] = true
		}
	}
	w.res.Batches = acked
	for _, b := range w.batches {
		if b.answer == nil {
			continue
		}
		for _, c := range b.changes {
			if b.refused[c.Row()] {
				if err := w.checkKept(ctx, sdb, b.dev, c); err != nil {
					return err
				}
				continue
			}
			if err := w.checkAcked(ctx, sdb, b.dev, c, successors); err != nil {
				return err
			}
		}
	}

	// Each acknowledged batch was recorded once: the idempotency table
	// holds exactly the batches acknowledged on the wire (refusals,
	// final too, are kept in _refused_batches).
	var recorded int
	if err := sdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM _batches").Scan(&recorded); err != nil {
		return fmt.Errorf("count batches: %w", err)
	}
	if recorded != acked {
		w.violate("server recorded %d batches, %d were acknowledged on the wire", recorded, acked)
	}
	if err := sdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM _conflicts").Scan(&w.res.Conflicts); err != nil {
		return fmt.Errorf("count conflicts: %w", err)
	}
	return w.checkErased(ctx)
}

// checkErased: an erased beneficiary has no personal value left on any
// replica, in its row or in the cell store, whoever erased it and
// whatever was written concurrently.
func (w *World) checkErased(ctx context.Context) error {
	dbs := map[string]*sql.DB{"server": w.srv.DB().R}
	for _, d := range w.devs {
		dbs[d.name] = d.db()
	}
	// A row re-created after the erasure (an INSERT with the same id)
	// writes anonyme back explicitly: a new, identified record, which
	// the erasure does not cover.
	recreated := map[string]bool{}
	for _, b := range w.batches {
		if b.answer == nil {
			continue
		}
		for _, c := range b.changes {
			if b.refused[c.Row()] {
				continue
			}
			if c.Table == "beneficiaire" && c.Column == "anonyme" && relaistest.Canon(c.Value) != "1" {
				recreated[c.PK] = true
			}
		}
	}
	for id, byServer := range mergeKeys(w.erased, w.erasedOnDevice) {
		if recreated[id] {
			continue
		}
		who := "from a device"
		if byServer {
			who = "by the server"
		}
		for name, db := range dbs {
			var n int
			// Values kept beside the row's versions (a deleted row's).
			err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM _rows r, json_each(r.extra) j
				WHERE r.tbl = (SELECT t.id FROM _tables t WHERE t.name = 'beneficiaire') AND r.pk = `+replica.PKSQL("?")+`
				AND j.key IN ('prenom', 'nom', 'telephone', 'email', 'adresse', 'notes') AND j.value IS NOT NULL`, id).Scan(&n)
			if err != nil {
				return fmt.Errorf("check erasure on %s: %w", name, err)
			}
			var row int
			err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM beneficiaire WHERE id = ?
				AND COALESCE(prenom, nom, telephone, email, adresse, notes) IS NOT NULL`, id).Scan(&row)
			if err != nil {
				return fmt.Errorf("check erasure on %s: %w", name, err)
			}
			if n > 0 || row > 0 {
				w.violate("beneficiaire %s, erased %s, still has personal values on %s (%d cells)", id, who, name, n)
			}
		}
	}
	return nil
}

// checkKept: a change the server refused is not lost. Its value is on the
// server (the same value written by someone else, or the server's own
// already), or in its device's list of refused changes, with the same
// version, until the conseillère retried or dismissed the row (both her
// choice; a retry is a new write, checked as such), or an erasure
// cleared it.
func (w *World) checkKept(ctx context.Context, sdb *sql.DB, d *Device, c syncproto.Change) error {
	if w.settled[settledKey{c.Table, c.PK, c.Column, c.Version}] {
		return nil
	}
	cell, ok, err := relaistest.HeldCell(ctx, sdb, c.Table, c.PK, c.Column)
	if err != nil {
		return fmt.Errorf("read cell: %w", err)
	}
	if ok && relaistest.Canon(cell.Value) == relaistest.Canon(c.Value) {
		return nil
	}
	var kept any
	err = d.db().QueryRowContext(ctx, "SELECT val FROM _rejected WHERE tbl = ? AND pk = ? AND col = ? AND hlc = ? AND node = ?",
		c.Table, c.PK, c.Column, int64(c.Version.HLC), c.Version.Node).Scan(&kept)
	switch {
	case err == sql.ErrNoRows:
		w.violate("refused write %s.%s of %s = %s (%s) by %s is neither on the server nor in its rejected list",
			c.Table, c.Column, c.PK, relaistest.Canon(c.Value), c.Version, d.name)
		return nil
	case err != nil:
		return fmt.Errorf("read rejected changes of %s: %w", d.name, err)
	}
	if relaistest.Canon(kept) != relaistest.Canon(c.Value) && !(kept == nil && isPersonal(c) && (w.erased[c.PK] || w.erasedOnDevice[c.PK])) {
		w.violate("rejected list of %s keeps %s for %s.%s of %s, written as %s", d.name, relaistest.Canon(kept), c.Table, c.Column, c.PK, relaistest.Canon(c.Value))
	}
	return nil
}

// mergeKeys returns the ids of both sets, true for those of the first.
func mergeKeys(first, second map[string]bool) map[string]bool {
	m := map[string]bool{}
	for k := range second {
		m[k] = false
	}
	for k := range first {
		m[k] = true
	}
	return m
}

func (w *World) checkAcked(ctx context.Context, sdb *sql.DB, d *Device, c syncproto.Change, successors map[syncproto.Cell]map[syncproto.Version]bool) error {
	cell, ok, err := relaistest.HeldCell(ctx, sdb, c.Table, c.PK, c.Column)
	if err != nil {
		return fmt.Errorf("read cell: %w", err)
	}
	if !ok {
		w.violate("acknowledged write %s.%s of %s by %s is not on the server at all", c.Table, c.Column, c.PK, d.name)
		return nil
	}
	val, held := cell.Value, cell.Version
	switch cmp := syncproto.Compare(held, c.Version); {
	case cmp < 0:
		w.violate("acknowledged write %s.%s of %s (%s) by %s is newer than what the server holds (%s)",
			c.Table, c.Column, c.PK, c.Version, d.name, held)
	case cmp == 0:
		if relaistest.Canon(val) != relaistest.Canon(c.Value) {
			w.violate("cell %s.%s of %s holds version %s with value %s, written as %s",
				c.Table, c.Column, c.PK, held, relaistest.Canon(val), relaistest.Canon(c.Value))
		}
	default:
		if successors[c.Cell()][c.Version] {
			return nil // overwritten by a write that had seen it
		}
		if (w.erased[c.PK] || w.erasedOnDevice[c.PK]) && (isPersonal(c) || (c.Table == "beneficiaire" && c.Column == "anonyme")) {
			// An erasure, or the server completing one, overwrote it as
			// the server (personal columns and anonyme): those writes take
			// the version they overwrite as prev, but the simulation does
			// not see them on the wire (campaign 6, seed 600150: a
			// device's erasure, then the server's, then a re-creation).
			return nil
		}
		if w.serverNode(held.Node) {
			// The server's own writes (an erasure) take the version they
			// overwrite as prev, so they never overwrite unseen; a write
			// that lost to one on arrival is in the conflict log, and
			// is caught by the query below if it is not.
			var n int
			if err := sdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM _conflicts WHERE tbl = ? AND pk = ? AND col = ? AND loser_hlc = ? AND loser_node = ?`,
				c.Table, c.PK, c.Column, int64(c.Version.HLC), c.Version.Node).Scan(&n); err != nil {
				return fmt.Errorf("read conflicts: %w", err)
			}
			if n == 0 {
				return nil
			}
		}
		var loserVal any
		err := sdb.QueryRowContext(ctx, `SELECT loser_val FROM _conflicts WHERE tbl = ? AND pk = ? AND col = ? AND loser_hlc = ? AND loser_node = ?`,
			c.Table, c.PK, c.Column, int64(c.Version.HLC), c.Version.Node).Scan(&loserVal)
		if err == sql.ErrNoRows {
			w.violate("acknowledged write %s.%s of %s = %s (%s) by %s was superseded by %s, concurrently, and is not in the conflict log",
				c.Table, c.Column, c.PK, relaistest.Canon(c.Value), c.Version, d.name, held)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read conflicts: %w", err)
		}
		if loserVal == nil && w.isErased(ctx, sdb, c) {
			return nil // erasure also clears personal values from the conflict log
		}
		// PostgreSQL's log keeps values as text: read as the dashboard does.
		loserVal = w.srv.Schema().StoredValue(c.Table, c.Column, loserVal)
		if relaistest.Canon(loserVal) != relaistest.Canon(c.Value) {
			w.violate("conflict log keeps %s for the losing write %s.%s (%s), written as %s",
				relaistest.Canon(loserVal), c.Table, c.Column, c.Version, relaistest.Canon(c.Value))
		}
	}
	return nil
}

// isPersonal reports whether c writes a beneficiary's personal column,
// the ones an erasure clears.
func isPersonal(c syncproto.Change) bool {
	if c.Table != "beneficiaire" {
		return false
	}
	switch c.Column {
	case "prenom", "nom", "telephone", "email", "adresse", "notes":
		return true
	}
	return false
}

// isErased reports whether c wrote a personal column of a beneficiary
// that is now anonymised.
func (w *World) isErased(ctx context.Context, sdb *sql.DB, c syncproto.Change) bool {
	if !isPersonal(c) {
		return false
	}
	cell, ok, err := relaistest.HeldCell(ctx, sdb, "beneficiaire", c.PK, "anonyme")
	return err == nil && ok && relaistest.Canon(cell.Value) == "1"
}
