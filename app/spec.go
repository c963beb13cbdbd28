package app

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/syncproto"
)

// Spec is what the app knows of the domain, generated from package
// domain so that Go and the app cannot disagree.
type Spec struct {
	// Enums are the stored values and their official French labels, in
	// the order the Coop shows them.
	Enums map[string][]Option `json:"enums"`
	// AideAuxDemarches is the theme the administrative themes require;
	// ThematiquesAdministratives those themes, which the form shows
	// under it.
	AideAuxDemarches           string   `json:"aide_aux_demarches"`
	ThematiquesAdministratives []string `json:"thematiques_administratives"`
	// PersonalColumns are what erasing a beneficiary clears.
	PersonalColumns []string `json:"personal_columns"`
	// Erase are the statements that erase a beneficiary, each with the
	// beneficiary's id as its one parameter (domain.EraseStatements).
	Erase []string `json:"erase"`
	// RuleAbortPrefix starts the message of a device trigger that refused
	// a row ("relais: rule NAME: message"), so a refusal the form did not
	// foresee is still shown next to its field.
	RuleAbortPrefix string `json:"rule_abort_prefix"`
	// EnumColumns name, per "table.column", the enum a column holds,
	// so a form offers its labels (domain.EnumColumns).
	EnumColumns map[string]EnumColumn `json:"enum_columns"`
	// Checks are, per table, one query that evaluates every rule on a
	// candidate row.
	Checks map[string]TableCheck `json:"checks"`
}

// EnumColumn is the enum a column holds; List when it holds a JSON list
// of its values.
type EnumColumn struct {
	Enum string `json:"enum"`
	List bool   `json:"list,omitempty"`
}

// Option is one enum value.
type Option struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

// TableCheck judges a row of one table before it is written: Query takes
// the row's Columns as parameters, in order (values typed as Types say),
// and returns one row with one 0/1 column per rule, named r0, r1… in
// the order of Rules. It is the same SQL as the device triggers and the server's
// check, evaluated on values not yet written.
type TableCheck struct {
	Columns []string          `json:"columns"`
	Types   map[string]string `json:"types"`
	Query   string            `json:"query"`
	Rules   []RuleSpec        `json:"rules"`
}

// RuleSpec is one rule as the form shows it: its French message goes
// next to Field.
type RuleSpec struct {
	Name    string `json:"name"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ruleFields says where the form shows the message of a rule that reads
// several columns: the field the conseillère should change. A rule that
// reads one column shows next to it. TestRuleFields fails when a new
// cross-column rule is missing here.
var ruleFields = map[string]string{
	"thematiques_administratives":   "thematiques",
	"precisions_demarche":           "precisions_demarche",
	"structure_lieu_activite":       "structure_id",
	"commune_domicile_autre":        "commune",
	"beneficiaire_identifie":        "nom",
	"beneficiaire_anonyme":          "anonyme",
	"rendez_vous_horaires":          "fin",
	"participants_anonymes_comptes": "total",
}

// fieldOf is where a rule's message shows.
func fieldOf(r domain.Rule) (string, error) {
	cols := r.Columns()
	if f, ok := ruleFields[r.Name]; ok {
		if !slices.Contains(cols, f) {
			return "", fmt.Errorf("rule %s: field %s is not one of its columns %v", r.Name, f, cols)
		}
		return f, nil
	}
	if len(cols) != 1 {
		return "", fmt.Errorf("rule %s reads %v: say in ruleFields which field shows its message", r.Name, cols)
	}
	return cols[0], nil
}

// BuildSpec builds the app's spec for a schema (the domain migrations').
func BuildSpec(schema *syncproto.Schema) (*Spec, error) {
	s := &Spec{
		Enums:            map[string][]Option{},
		AideAuxDemarches: domain.AideAuxDemarches,
		PersonalColumns:  slices.Clone(domain.PersonalColumns),
		Erase:            domain.EraseStatements(),
		RuleAbortPrefix:  "relais: rule ",
		Checks:           map[string]TableCheck{},
		EnumColumns:      map[string]EnumColumn{},
	}
	for _, c := range domain.EnumColumns {
		s.EnumColumns[c.Table+"."+c.Column] = EnumColumn{Enum: c.Enum, List: c.List}
	}
	for _, e := range domain.Enums {
		for _, o := range e.Options {
			s.Enums[e.Name] = append(s.Enums[e.Name], Option{Value: o.Value, Label: o.Label})
		}
	}
	for _, o := range domain.ThematiquesAdministratives {
		s.ThematiquesAdministratives = append(s.ThematiquesAdministratives, o.Value)
	}
	for table, rules := range domain.RulesFor(schema) {
		var cols []string
		for _, r := range rules {
			for _, c := range r.Columns() {
				if !slices.Contains(cols, c) {
					cols = append(cols, c)
				}
			}
		}
		slices.Sort(cols)
		tc := TableCheck{Columns: cols, Types: map[string]string{}}
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = "? AS " + quoteIdent(c)
			t, _ := schema.ColumnType(table, c)
			tc.Types[c] = string(t)
		}
		preds := make([]string, len(rules))
		for i, r := range rules {
			field, err := fieldOf(r)
			if err != nil {
				return nil, err
			}
			preds[i] = fmt.Sprintf("COALESCE((%s), 0) != 0 AS \"r%d\"", r.SQL("r"), i)
			tc.Rules = append(tc.Rules, RuleSpec{Name: r.Name, Field: field, Message: r.Message})
		}
		tc.Query = "SELECT " + strings.Join(preds, ",\n  ") + "\nFROM (SELECT " + strings.Join(sel, ", ") + ") AS r"
		s.Checks[table] = tc
	}
	return s, nil
}

// JSON is the spec as src/generated/spec.json holds it.
func (s *Spec) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("app spec: %w", err)
	}
	return append(b, '\n'), nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
