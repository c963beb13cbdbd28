package demo

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/replica"

	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// bulk writes generated rows through replica.Apply, a few thousand
// cells at a time: with one version record per row, Apply writes new
// rows as fast as the hand-written multi-row INSERTs it used to be
// compared with. It numbers rows for pulls and records their owners, as
// a running server's pulls read by them.
type bulk struct {
	ctx     context.Context
	tx      *sql.Tx
	schema  *syncproto.Schema
	owners  map[string]string // owned table → owner column (scope rules)
	pending []syncproto.Change
}

const bulkChunk = 4096 // cells per Apply

func newBulk(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema) (*bulk, error) {
	return &bulk{ctx: ctx, tx: tx, schema: schema, owners: scope.NewRules(schema).OwnerColumns()}, nil
}

// add queues one row's cells.
func (b *bulk) add(table, pk string, changes []syncproto.Change) error {
	b.pending = append(b.pending, changes...)
	if len(b.pending) >= bulkChunk {
		return b.flush()
	}
	return nil
}

func (b *bulk) flush() error {
	if len(b.pending) == 0 {
		return nil
	}
	if _, err := replica.Apply(b.ctx, b.tx, b.schema, b.pending, replica.Options{AssignSeq: true, Owners: b.owners}); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	b.pending = b.pending[:0]
	return nil
}

// finish writes what is queued.
func (b *bulk) finish() error { return b.flush() }
