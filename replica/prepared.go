package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/relais-numerique/relais/syncproto"
)

// Prepared keeps the statements every Apply runs prepared on a replica's
// writer connection from one transaction to the next. Preparing an upsert
// on a device's domain table compiles the table's capture and rule
// triggers into it, which costs more than running it; without this, each
// pulled page prepares them again (a sixth of a device's CPU in an initial
// sync).
//
// Statements must be prepared outside any transaction: the writer pool has
// a single connection, which a transaction holds. Warm does it, for the
// statements whose text does not depend on the batch; Apply takes them
// into its transaction with Tx.StmtContext, which reuses a statement
// prepared on the same connection.
type Prepared struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// NewPrepared returns an empty set of statements for the writer db.
func NewPrepared(db *sql.DB) *Prepared {
	return &Prepared{db: db, m: map[string]*sql.Stmt{}}
}

// Warm prepares the statements Apply uses for every batch of this schema:
// writing a cell, reading the held cells of rows, and for each table
// writing a new row and deleting one. Call it outside any transaction,
// again after the schema changed.
func (p *Prepared) Warm(ctx context.Context, schema *syncproto.Schema) error {
	queries := []string{putCellSQL, loadRowsSQL}
	for _, name := range schema.TableNames() {
		t := schema.Tables[name]
		queries = append(queries, upsertSQL(t, t.ColumnNames()), deleteSQL(t))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range queries {
		if _, ok := p.m[q]; ok {
			continue
		}
		st, err := p.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare merge statements: %w", err)
		}
		p.m[q] = st
	}
	return nil
}

func (p *Prepared) lookup(query string) *sql.Stmt {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[query]
}

// Close releases the statements.
func (p *Prepared) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for q, st := range p.m {
		errs = append(errs, st.Close())
		delete(p.m, q)
	}
	return errors.Join(errs...)
}
