package server

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// WriteRow writes cells of one row as the server itself, with a fresh
// clock reading and the server's node id, through the merge engine: the
// write gets sequence numbers and reaches every device at its next pull.
// values may hold syncproto.DeletedColumn to delete or re-create the row.
func (s *Server) WriteRow(ctx context.Context, table, pk string, values map[string]any) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		return s.WriteRowTx(ctx, tx, table, pk, values)
	})
}

// WriteRowTx is WriteRow inside a transaction the caller owns, for writes
// that must commit together with other bookkeeping.
func (s *Server) WriteRowTx(ctx context.Context, tx *sql.Tx, table, pk string, values map[string]any) error {
	if err := s.witnessStored(ctx, tx); err != nil {
		return err
	}
	ver := syncproto.Version{HLC: s.clock.Now(), Node: s.node}
	res, err := replica.Write(ctx, tx, s.Schema(), ver, table, pk, values,
		s.applyOptions())
	if err != nil {
		return err
	}
	// A write that changes who sees what (a coordination, an owner)
	// re-announces the rows it makes visible.
	changes := make([]syncproto.Change, 0, len(values))
	for col := range values {
		changes = append(changes, syncproto.Change{Table: table, PK: pk, Column: col})
	}
	if err := s.reannounce(ctx, tx, changes, res); err != nil {
		return err
	}
	return replica.SaveClock(ctx, tx, ver.HLC)
}

// witnessStored advances the server's clock past the newest version
// stored in the database (the clock every merge saves with its writes),
// before the server stamps a write of its own. One server sees every
// exchange, and its clock has already passed every version it stored;
// with several servers on one database, another may have stored a
// device's write this process never saw, stamped ahead of this
// process's clock (a device's clock a little fast), and an erasure
// stamped below it would lose to the very values it erases.
func (s *Server) witnessStored(ctx context.Context, tx *sql.Tx) error {
	var stored int64
	if err := tx.QueryRowContext(ctx, "SELECT hlc FROM _replica WHERE id = 1").Scan(&stored); err != nil {
		return fmt.Errorf("read the stored clock: %w", err)
	}
	// A stored version too far ahead was accepted when the bound allowed
	// it: the clock is not advanced past it, as it would not be by a
	// request, and the write goes on.
	_, _ = s.clock.Update(syncproto.Timestamp(stored))
	return nil
}

// witnessServed advances the server's clock past the versions of the
// cells an answer carries, before the answer's clock is read: the
// device's clock follows that one, and a write the device makes after
// receiving a cell must beat it. One server's clock has passed every
// version it stored; another server on the database may have stored
// these, stamped ahead of this process's clock, and the device's next
// write would then lose to a cell it had seen, with no conflict logged
// (the simulation's two-server mode, seeds 150078 and 150099).
func (s *Server) witnessServed(changes []syncproto.Change) {
	var newest syncproto.Timestamp
	for i := range changes {
		newest = max(newest, changes[i].Version.HLC)
	}
	if newest > 0 {
		// Stored versions were accepted within the bound; one beyond it
		// now (the server's wall clock set back) does not move the clock.
		_, _ = s.clock.Update(newest)
	}
}

// Node is the server's node id, the author of the server's own writes.
func (s *Server) Node() string { return s.node }

// Clock is the server's hybrid logical clock.
func (s *Server) Clock() *syncproto.Clock { return s.clock }

// WriteRowAs writes cells of one row as the server on behalf of a person
// (a conflict resolved on the dashboard), inside tx. It is a write like
// any pushed change and goes through the same checks: the values' types
// (Schema.Check), the scope (scope.Rules.CheckResolution, the push's
// check with a coordinator's one grant) and the domain's rules
// (domain.BeforeApply and AfterApply, as in push). A refusal is a
// *syncproto.Error (bad_value, forbidden_scope, invalid_row) and the
// caller's transaction must roll back: nothing is stored.
func (s *Server) WriteRowAs(ctx context.Context, tx *sql.Tx, w scope.Who, table, pk string, values map[string]any) error {
	schema := s.Schema()
	ver := syncproto.Version{HLC: s.clock.Now(), Node: s.node}
	changes := make([]syncproto.Change, 0, len(values))
	for col, val := range values {
		ch := syncproto.Change{Table: table, PK: pk, Column: col, Value: val, Version: ver}
		if err := schema.Check(&ch); err != nil {
			return err
		}
		values[col] = ch.Value
		changes = append(changes, ch)
	}
	if err := s.scopeRules().CheckResolution(ctx, tx, w, scope.Today(s.cfg.Now()), changes); err != nil {
		return err
	}
	rules, err := domain.BeforeApply(ctx, s.rulesOn(tx), schema, changes)
	if err != nil {
		return fmt.Errorf("write %s %s: %w", table, pk, err)
	}
	if err := s.WriteRowTx(ctx, tx, table, pk, values); err != nil {
		return err
	}
	return rules.AfterApply(ctx, s.rulesOn(tx), func(table, pk string, values map[string]any) error {
		return s.WriteRowTx(ctx, tx, table, pk, values)
	})
}
