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
// pulled page prepares them again, a large share of a device's CPU in an
// initial sync (BENCHMARKS.md, "Figures behind the code").
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
	// missed holds the texts Apply had to prepare in its transaction
	// because they were not here (a row's shape of changed columns, on
	// a row the replica already held); Learn prepares them for the next
	// transactions.
	missed  map[string]bool
	learned int
}

// maxLearned bounds the statements Learn keeps: each holds its table's
// triggers compiled in, and the shapes of changed columns are many in
// theory, few in practice (an application edits a form's few fields).
const maxLearned = 64

// NewPrepared returns an empty set of statements for the writer db.
func NewPrepared(db *sql.DB) *Prepared {
	return &Prepared{db: db, m: map[string]*sql.Stmt{}}
}

// Warm prepares the statements Apply uses for every batch of this schema:
// writing version records (one chunk size each), and for each table writing new rows (one chunk size each) and deleting
// one. Call it outside any transaction,
// again after the schema changed.
func (p *Prepared) Warm(ctx context.Context, schema *syncproto.Schema) error {
	var queries []string
	for _, n := range recordChunks {
		queries = append(queries, putRecordsSQL(n))
	}
	for _, name := range schema.TableNames() {
		t := schema.Tables[name]
		for _, n := range rowChunks {
			queries = append(queries, newRowsSQL(t, t.ColumnNames(), n))
		}
		queries = append(queries, deleteSQL(t))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range queries {
		if _, err := p.prepareLocked(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// prepareLocked prepares query unless it is held already, and reports
// whether it did. p.mu must be held.
func (p *Prepared) prepareLocked(ctx context.Context, query string) (bool, error) {
	if _, ok := p.m[query]; ok {
		return false, nil
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return false, fmt.Errorf("prepare merge statements: %w", err)
	}
	p.m[query] = st
	return true, nil
}

func (p *Prepared) lookup(query string) *sql.Stmt {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.m[query]
	if st == nil && p.learned+len(p.missed) < maxLearned {
		if p.missed == nil {
			p.missed = map[string]bool{}
		}
		p.missed[query] = true
	}
	return st
}

// Learn prepares the statements the last transactions had to prepare
// for themselves, so that the next ones find them here. Like Warm, it
// runs outside any transaction. Preparing an upsert on a device's
// domain table costs far more than running it, and a replica receiving
// edits (a device back from a month away) meets the same few shapes of
// changed columns page after page.
func (p *Prepared) Learn(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for q := range p.missed {
		delete(p.missed, q)
		prepared, err := p.prepareLocked(ctx, q)
		if err != nil {
			return err
		}
		if prepared {
			p.learned++
		}
	}
	return nil
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
