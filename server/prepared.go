package server

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"sync"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// The push path's own bookkeeping queries, kept prepared with the rest.
const (
	batchAnswerSQL  = "SELECT response FROM _batches WHERE device_id = ? AND id = ?"
	batchRecordSQL  = "INSERT INTO _batches (device_id, id, received_at, response) VALUES (?, ?, ?, ?)"
	batchRefusedSQL = "SELECT error FROM _refused_batches WHERE device_id = ? AND id = ?"
)

// pushStatements keeps the statements every pushed batch runs prepared on
// the writer connection from one batch to the next: the merge's (through
// replica.Prepared, as devices do), the domain rules' queries, the scope
// check's and the batch bookkeeping. Preparing them again for every
// batch was a large share of the server's CPU in an ingest, the rules'
// queries (one long predicate per rule) most of it (BENCHMARKS.md, "Figures behind the code").
//
// The writer pool has a single connection, which a transaction holds, so
// statements are prepared outside any transaction (warm, before the
// batch's transaction begins) and taken into it with Tx.StmtContext,
// which reuses a statement prepared on the same connection, and prepares
// it again on the spot should the pool have replaced the connection.
// database/sql closes them with the connection when the server closes.
type pushStatements struct {
	mu     sync.Mutex
	schema *syncproto.Schema // what the statements were prepared for
	merge  *replica.Prepared
	m      map[string]*sql.Stmt
}

// warm prepares, on db (the writer pool), the statements of a push on
// this schema, unless that was done already. A Schema is not changed once
// loaded, so a new pointer is a new schema. Call it outside any
// transaction on db. checks adds the domain rules' check queries, which
// are SQLite's (on PostgreSQL they run on a SQLite copy, pgrules.go).
func (p *pushStatements) warm(ctx context.Context, db *sql.DB, schema *syncproto.Schema, checks bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.schema == schema {
		return nil
	}
	if p.merge == nil {
		p.merge = replica.NewPrepared(db)
	}
	if err := p.merge.Warm(ctx, schema); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	// A new map rather than additions to the old one: transactions begun
	// earlier may still be reading it, without the lock.
	m := maps.Clone(p.m)
	if m == nil {
		m = map[string]*sql.Stmt{}
	}
	queries := append([]string{batchAnswerSQL, batchRecordSQL, batchRefusedSQL}, scope.PushQueries()...)
	if checks {
		queries = append(queries, domain.CheckQueries(schema)...)
	}
	for _, q := range queries {
		if _, ok := m[q]; ok {
			continue
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("push: prepare statements: %w", err)
		}
		m[q] = st
	}
	p.m, p.schema = m, schema
	return nil
}

// mergeStatements is what replica.Apply takes as Options.Prepared.
func (p *pushStatements) mergeStatements() *replica.Prepared {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.merge
}

// in returns a querier that runs tx's queries through the prepared
// statements where there is one, and as plain queries otherwise.
func (p *pushStatements) in(tx *sql.Tx) *preparedTx {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &preparedTx{Tx: tx, parents: p.m, m: map[string]*sql.Stmt{}}
}

// preparedTx is a transaction whose queries use statements prepared
// before it began. It satisfies domain.Querier and scope.Queryer. The
// statements it takes into the transaction are closed with it.
type preparedTx struct {
	*sql.Tx
	parents map[string]*sql.Stmt // read-only once handed out
	m       map[string]*sql.Stmt
}

func (t *preparedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.m[query]; ok {
		return st
	}
	parent, ok := t.parents[query]
	if !ok {
		return nil
	}
	st := t.Tx.StmtContext(ctx, parent)
	t.m[query] = st
	return st
}

func (t *preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
