package demo

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/store"
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
	opt     replica.Options
	pending []syncproto.Change
}

const bulkChunk = 4096 // cells per Apply

func newBulk(ctx context.Context, tx *sql.Tx, db *store.DB, schema *syncproto.Schema) (*bulk, error) {
	opt := server.OnStore(db, replica.Options{AssignSeq: true, Owners: scope.NewRules(schema).OwnerColumns()})
	return &bulk{ctx: ctx, tx: tx, schema: schema, opt: opt}, nil
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
	if _, err := replica.Apply(b.ctx, b.tx, b.schema, b.pending, b.opt); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	b.pending = b.pending[:0]
	return nil
}

// finish writes what is queued.
func (b *bulk) finish() error { return b.flush() }
