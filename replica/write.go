package replica

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/relais-numerique/relais/syncproto"
)

// Write records writes made on this replica itself, outside capture
// triggers: the server's own writes (a coordinator's resolution, an
// administrator's command, the retention job). Each value becomes a change
// stamped ver, with prev set to the version held, and goes through Apply
// like any other change, so every replica receives it at its next pull.
func Write(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, ver syncproto.Version, table, pk string, values map[string]any, opt Options) (Result, error) {
	cols := make([]string, 0, len(values))
	for c := range values {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	held, err := HeldRow(ctx, tx, schema, table, pk)
	if err != nil {
		return Result{}, fmt.Errorf("write %s %s: %w", table, pk, err)
	}
	changes := make([]syncproto.Change, 0, len(cols))
	for _, col := range cols {
		ch := syncproto.Change{Table: table, PK: pk, Column: col, Value: values[col], Version: ver}
		if err := schema.Check(&ch); err != nil {
			return Result{}, fmt.Errorf("write %s %s: %w", table, pk, err)
		}
		ch.Prev = held[col].Version
		changes = append(changes, ch)
	}
	return Apply(ctx, tx, schema, changes, opt)
}
