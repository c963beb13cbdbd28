package domain

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// RulesFor returns the rules that apply to a schema: those whose table
// and columns it has. An older replica checks what it can.
func RulesFor(schema *syncproto.Schema) map[string][]Rule {
	out := map[string][]Rule{}
	for _, r := range Rules() {
		t, ok := schema.Tables[r.Table]
		if !ok {
			continue
		}
		all := true
		for _, c := range r.Columns() {
			if _, ok := t.Columns[c]; !ok {
				all = false
				break
			}
		}
		if all {
			out[r.Table] = append(out[r.Table], r)
		}
	}
	return out
}

// Querier runs queries in a transaction or on a database.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Violation is one row breaking one rule.
type Violation struct {
	Rule  Rule
	Table string
	PK    string
}

// Violations evaluates the schema's rules on the given rows (table ->
// primary keys) and returns those broken, in a stable order. Rows that
// do not exist (deleted, or not created yet) break nothing.
func Violations(ctx context.Context, q Querier, schema *syncproto.Schema, rows map[string][]string) ([]Violation, error) {
	checks := checksOf(schema)
	tables := make([]string, 0, len(rows))
	for t := range rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	var out []Violation
	for _, t := range tables {
		tc, ok := checks[t]
		if !ok || len(rows[t]) == 0 {
			continue
		}
		keys, err := json.Marshal(rows[t])
		if err != nil {
			return nil, fmt.Errorf("check rules on %s: %w", t, err)
		}
		res, err := q.QueryContext(ctx, tc.query, string(keys))
		if err != nil {
			return nil, fmt.Errorf("check rules on %s: %w", t, err)
		}
		flags := make([]bool, len(tc.rules))
		dest := make([]any, len(tc.rules)+1)
		var id string
		dest[0] = &id
		for i := range flags {
			dest[i+1] = &flags[i]
		}
		for res.Next() {
			if err := res.Scan(dest...); err != nil {
				res.Close()
				return nil, fmt.Errorf("check rules on %s: %w", t, err)
			}
			for i, broken := range flags {
				if broken {
					out = append(out, Violation{Rule: tc.rules[i], Table: t, PK: id})
				}
			}
		}
		if err := res.Close(); err != nil {
			return nil, fmt.Errorf("check rules on %s: %w", t, err)
		}
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("check rules on %s: %w", t, err)
		}
	}
	return out, nil
}

// tableCheck is what judging rows of one table takes: the rules that
// apply to it and the one query that evaluates them all on a list of
// rows (their ids as a JSON array, the query's only argument).
type tableCheck struct {
	rules []Rule
	query string
}

// schemaChecks are the table checks of one schema.
type schemaChecks struct {
	schema *syncproto.Schema
	tables map[string]tableCheck
}

// lastChecks holds the checks of the schema last asked for. Building
// them (every rule's SQL, and its columns found by regular expression)
// cost a pushed batch more than running them; a server has one schema
// at a time, and a Schema is not changed once loaded (a reload makes a
// new one), so its pointer identifies it.
var lastChecks atomic.Pointer[schemaChecks]

func checksOf(schema *syncproto.Schema) map[string]tableCheck {
	if c := lastChecks.Load(); c != nil && c.schema == schema {
		return c.tables
	}
	c := &schemaChecks{schema: schema, tables: map[string]tableCheck{}}
	for t, rules := range RulesFor(schema) {
		var b strings.Builder
		b.WriteString("SELECT id")
		for _, r := range rules {
			b.WriteString(", COALESCE((" + r.SQL("r") + "), 0) != 0")
		}
		b.WriteString(` FROM "` + t + `" AS r WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`)
		c.tables[t] = tableCheck{rules: rules, query: b.String()}
	}
	lastChecks.Store(c)
	return c.tables
}

// CheckQueries returns the text of every query Violations (and so
// BeforeApply and AfterApply) may run on a database of this schema, in a
// stable order, so that a caller can keep them prepared.
func CheckQueries(schema *syncproto.Schema) []string {
	checks := checksOf(schema)
	out := make([]string, 0, len(checks))
	for _, tc := range checks {
		out = append(out, tc.query)
	}
	slices.Sort(out)
	return out
}

// Check is the server's rule check around one pushed batch: BeforeApply
// notes which rules the touched rows already broke, AfterApply refuses
// the batch if, once merged, a row breaks a rule it did not break before.
//
// Why "newly broken" and not "broken": a row may already break a rule
// for reasons the pusher is not answerable for (written before the rule
// existed, or made of two valid concurrent writes merged cell by cell);
// a batch that does not make things worse must not be blocked by it,
// or a device could never sync again. A batch whose cells, merged with
// what the server holds, turn a valid row invalid is refused whole with
// invalid_row, and the transaction rolls back: the server never turns a
// valid row into an invalid one.
type Check struct {
	schema *syncproto.Schema
	rows   map[string][]string
	index  map[syncproto.RowKey]int
	before map[string]bool
	// erasing are the beneficiaries the batch anonymises; filled the
	// beneficiary cells to which it writes a value (not NULL).
	erasing []string
	filled  map[syncproto.Cell]bool
}

// WriteFunc writes cells of one row as the server itself (a fresh
// version, through the merge engine), inside the batch's transaction.
type WriteFunc func(table, pk string, values map[string]any) error

func violationKey(v Violation) string { return v.Table + "\x00" + v.PK + "\x00" + v.Rule.Name }

// BeforeApply starts the check of a batch inside its transaction, before
// replica.Apply.
func BeforeApply(ctx context.Context, q Querier, schema *syncproto.Schema, changes []syncproto.Change) (*Check, error) {
	c := &Check{schema: schema, rows: map[string][]string{}, index: map[syncproto.RowKey]int{}, before: map[string]bool{}, filled: map[syncproto.Cell]bool{}}
	for i, ch := range changes {
		if ch.Table == "beneficiaire" && ch.Column == "anonyme" && fmt.Sprint(ch.Value) == "1" {
			c.erasing = append(c.erasing, ch.PK)
		}
		if ch.Table == "beneficiaire" && ch.Value != nil {
			c.filled[ch.Cell()] = true
		}
		k := ch.Row()
		if _, seen := c.index[k]; seen {
			continue
		}
		c.index[k] = i
		c.rows[ch.Table] = append(c.rows[ch.Table], ch.PK)
	}
	vs, err := Violations(ctx, q, schema, c.rows)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		c.before[violationKey(v)] = true
	}
	return c, nil
}

// AfterApply finishes the check after replica.Apply, in the same
// transaction. It returns an invalid_row *syncproto.Error naming the
// rule (details: rule, table, pk, index of the row's first change) for
// the first row the batch made invalid.
//
// Erasure always wins: when the batch anonymises a beneficiary but a
// concurrent edit with a newer version kept a personal value (the edit
// reached the server first), the server clears that value itself with
// write, so the erasure is completed rather than refused. (A batch that
// puts a personal value on a beneficiary already anonymised is refused
// by rule beneficiaire_anonyme instead.) Finally the personal values of
// anonymised beneficiaries the batch touched are cleared from the
// conflict log, where a concurrent write that lost may have left them.
func (c *Check) AfterApply(ctx context.Context, q Querier, write WriteFunc) error {
	broken, err := c.Finish(ctx, q, write)
	if err != nil || len(broken) == 0 {
		return err
	}
	return c.Refusal(broken[0])
}

// Refusal is the invalid_row error for one violation Finish reported.
func (c *Check) Refusal(v Violation) *syncproto.Error {
	return syncproto.Errorf(syncproto.CodeInvalidRow, "%s %s breaks rule %s: %s", v.Table, v.PK, v.Rule.Name, v.Rule.Message).
		With(syncproto.DetailRule, v.Rule.Name).With(syncproto.DetailTable, v.Table).With(syncproto.DetailPK, v.PK).
		With(syncproto.DetailIndex, c.index[syncproto.RowKey{Table: v.Table, PK: v.PK}])
}

// Finish is AfterApply reporting every row the batch made invalid, each
// with the first rule it newly breaks, instead of an error for the first
// one: the server refuses those rows alone, rolls the merge back and
// applies the batch again without them. The conflict log is scrubbed
// only when nothing is broken (the batch applied as it will stand).
func (c *Check) Finish(ctx context.Context, q Querier, write WriteFunc) ([]Violation, error) {
	if err := c.completeErasures(ctx, q, write); err != nil {
		return nil, err
	}
	vs, err := Violations(ctx, q, c.schema, c.rows)
	if err != nil {
		return nil, err
	}
	var broken []Violation
	seen := map[syncproto.RowKey]bool{}
	for _, v := range vs {
		k := syncproto.RowKey{Table: v.Table, PK: v.PK}
		if c.before[violationKey(v)] || seen[k] {
			continue
		}
		seen[k] = true
		broken = append(broken, v)
	}
	if len(broken) > 0 {
		return broken, nil
	}
	if pks := c.rows["beneficiaire"]; len(pks) > 0 {
		if err := ScrubConflicts(ctx, q, pks); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// ScrubConflicts clears, in the conflict log, the personal values of
// those of the given beneficiaries that are anonymised. Both sides of a
// conflict go: an erased value must not survive as a "loser".
func ScrubConflicts(ctx context.Context, q Querier, pks []string) error {
	keys, err := json.Marshal(pks)
	if err != nil {
		return fmt.Errorf("scrub conflicts: %w", err)
	}
	_, err = q.ExecContext(ctx, `UPDATE _conflicts SET winner_val = NULL, loser_val = NULL
		WHERE tbl = 'beneficiaire' AND col IN `+sqlList(PersonalColumns)+`
		  AND pk IN (SELECT id FROM beneficiaire WHERE anonyme = 1 AND id IN (SELECT value FROM json_each(?)))
		  AND (winner_val IS NOT NULL OR loser_val IS NOT NULL)`, string(keys))
	if err != nil {
		return fmt.Errorf("scrub conflicts: %w", err)
	}
	return nil
}

// completeErasures clears, as the server, the personal values left on
// the beneficiaries this batch anonymised, and on the anonymised
// beneficiaries it touched whose row is deleted: no rule judges a
// deleted row, yet its cells still travel to every replica (found by the
// reliability simulation: a name written offline to a beneficiary that
// was erased, then deleted, was kept by the server and differed on the
// devices, whose scrub cleared it). Anonymity is read from the anonyme
// cell, which a deleted row keeps.
func (c *Check) completeErasures(ctx context.Context, q Querier, write WriteFunc) error {
	if len(c.erasing) == 0 && len(c.rows["beneficiaire"]) == 0 {
		return nil
	}
	// The candidates: the rows the batch erases, and the rows it touches
	// that are deleted (no domain row). Their values as held (a deleted
	// row's are kept with its versions).
	touched := c.rows["beneficiaire"]
	live := map[string]bool{}
	if all := append(slices.Clone(touched), c.erasing...); len(all) > 0 {
		list, err := json.Marshal(all)
		if err != nil {
			return fmt.Errorf("complete erasure: %w", err)
		}
		rows, err := q.QueryContext(ctx, "SELECT id FROM beneficiaire WHERE id IN (SELECT value FROM json_each(?))", string(list))
		if err != nil {
			return fmt.Errorf("complete erasure: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("complete erasure: %w", err)
			}
			live[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("complete erasure: %w", err)
		}
	}
	candidates := slices.Clone(c.erasing)
	for _, pk := range touched {
		if !live[pk] {
			candidates = append(candidates, pk)
		}
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	if len(candidates) == 0 {
		return nil
	}
	cols := append([]string{"anonyme"}, PersonalColumns...)
	vals, err := replica.Values(ctx, q, c.schema, "beneficiaire", candidates, cols)
	if err != nil {
		return fmt.Errorf("complete erasure: %w", err)
	}
	left := map[string]map[string]any{}
	var order []string
	for _, pk := range candidates {
		m, ok := vals[pk]
		if !ok || syncproto.ValueText(m["anonyme"]) != "1" {
			continue
		}
		isLive := live[pk]
		for _, col := range PersonalColumns {
			if m[col] == nil {
				continue
			}
			if isLive && c.filled[syncproto.Cell{Table: "beneficiaire", PK: pk, Column: col}] {
				continue // the batch's own value on a live row: the rules judge it
			}
			if left[pk] == nil {
				left[pk] = map[string]any{}
				order = append(order, pk)
			}
			left[pk][col] = nil
		}
	}
	for _, pk := range order {
		if write == nil {
			return fmt.Errorf("complete erasure of beneficiaire %s: no server writer", pk)
		}
		if err := write("beneficiaire", pk, left[pk]); err != nil {
			return fmt.Errorf("complete erasure of beneficiaire %s: %w", pk, err)
		}
	}
	return nil
}
