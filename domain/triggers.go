package domain

import (
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// TriggerPrefix starts the name of every trigger DeviceTriggers makes.
// The device SDK drops and re-creates triggers with this prefix each
// time a replica opens, so they always match the current schema.
const TriggerPrefix = "_check_rule_"

// DeviceRuleCases returns, for each table of schema with rules, the arms
// of an SQL CASE (each "WHEN … THEN …") that names the first rule the
// row NEW breaks, in the order of Rules, as "relais: rule <name>:
// <message>"; a NULL predicate counts as satisfied. The device SDK puts
// them in its BEFORE INSERT and BEFORE UPDATE check triggers, one
// statement with its own checks, so that a valid write costs one
// trigger and one expression: each trigger a statement fires costs a
// frame whose registers are cleared at every row, and each rule's SQL is
// written once (the triggers are compiled into every statement writing
// the table, and an application prepares one at each save).
func DeviceRuleCases(schema *syncproto.Schema) map[string]string {
	out := map[string]string{}
	for t, rules := range RulesFor(schema) {
		var cases strings.Builder
		for _, r := range rules {
			msg := fmt.Sprintf("relais: rule %s: %s", r.Name, r.Message)
			fmt.Fprintf(&cases, "\n        WHEN COALESCE((%s), 0) != 0 THEN %s", r.SQL("NEW"), quoteLiteral(msg))
		}
		out[t] = cases.String()
	}
	return out
}

// DeviceTriggers returns the SQL of the device's erasure triggers for a
// schema. They are pure SQL, like the capture triggers, so SDKs in other
// languages can install the same text: AFTER INSERT/UPDATE OF anonyme on
// beneficiaire, not guarded: once a beneficiary is anonymised, its
// personal values are cleared from every local table that can hold them
// (domain row, outbox, rejected changes, conflict log), whether the
// erasure was made here or arrived from the server. The rules are
// checked by the device's check triggers (DeviceRuleCases).
func DeviceTriggers(schema *syncproto.Schema) []string {
	var out []string
	if scrub := scrubStatements(schema); scrub != "" {
		out = append(out,
			fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON beneficiaire WHEN NEW.anonyme = 1\nBEGIN\n%sEND",
				quoteIdent(TriggerPrefix+"beneficiaire_effacement_insert"), scrub),
			fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE OF anonyme ON beneficiaire WHEN NEW.anonyme = 1\nBEGIN\n%sEND",
				quoteIdent(TriggerPrefix+"beneficiaire_effacement_update"), scrub))
	}
	return out
}

// scrubStatements clears an anonymised beneficiary's personal values
// everywhere a device keeps values. Clearing a cell's value without
// changing its version is deliberate: erasure wins over any local write,
// even one newer than the erasure that the server refused.
func scrubStatements(schema *syncproto.Schema) string {
	t, ok := schema.Tables["beneficiaire"]
	if !ok {
		return ""
	}
	if _, ok := t.Columns["anonyme"]; !ok {
		return ""
	}
	var cols []string
	for _, c := range PersonalColumns {
		if _, ok := t.Columns[c]; ok {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		return ""
	}
	set := make([]string, len(cols))
	held := make([]string, len(cols))
	for i, c := range cols {
		set[i] = quoteIdent(c) + " = NULL"
		held[i] = quoteIdent(c) + " IS NOT NULL"
	}
	in := sqlList(cols)
	var b strings.Builder
	fmt.Fprintf(&b, "    UPDATE beneficiaire SET %s WHERE id = NEW.id AND (%s);\n", strings.Join(set, ", "), strings.Join(held, " OR "))
	// One outbox entry per row: a frozen one keeps its values in vals
	// (an open one has none, its values are the row's).
	paths := make([]string, 0, 2*len(cols))
	for _, c := range cols {
		paths = append(paths, `'$."`+c+`"'`, "NULL")
	}
	fmt.Fprintf(&b, "    UPDATE _outbox SET vals = json_replace(vals, %s) WHERE tbl = (SELECT id FROM _tables WHERE name = 'beneficiaire') AND pk = NEW.id AND vals IS NOT NULL;\n",
		strings.Join(paths, ", "))
	fmt.Fprintf(&b, "    UPDATE _rejected SET val = NULL WHERE tbl = 'beneficiaire' AND pk = NEW.id AND col IN %s AND val IS NOT NULL;\n", in)
	fmt.Fprintf(&b, "    UPDATE _conflicts SET winner_val = NULL, loser_val = NULL WHERE tbl = 'beneficiaire' AND pk = NEW.id AND col IN %s AND (winner_val IS NOT NULL OR loser_val IS NOT NULL);\n", in)
	return b.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
