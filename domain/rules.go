package domain

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rule is one of the Coop's validation rules, written once as an SQL
// predicate over one row. Devices turn it into BEFORE INSERT/UPDATE
// triggers (DeviceTriggers); the server evaluates it on every row a
// pushed batch touches (BeforeApply/AfterApply). Both read the same text.
type Rule struct {
	// Name is stable: it appears in errors (details.rule) and in the
	// device's abort message, and clients may switch on it.
	Name  string
	Table string
	// Violated is true when the row breaks the rule. Columns are written
	// $.column; they become NEW."column" in a trigger and r."column" on
	// the server. A NULL result counts as satisfied.
	Violated string
	// Message says, in French, what the conseiller must fix.
	Message string
}

var colRef = regexp.MustCompile(`\$\.([a-z_][a-z0-9_]*)`)

// Columns returns the columns the rule reads, sorted.
func (r Rule) Columns() []string {
	var cols []string
	for _, m := range colRef.FindAllStringSubmatch(r.Violated, -1) {
		if !slices.Contains(cols, m[1]) {
			cols = append(cols, m[1])
		}
	}
	slices.Sort(cols)
	return cols
}

// SQL returns the predicate with columns prefixed by alias ("NEW", "r").
func (r Rule) SQL(alias string) string {
	return colRef.ReplaceAllString(r.Violated, alias+`."$1"`)
}

// sqlList renders values as an SQL list of string literals.
func sqlList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quoteLiteral(v)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// oneOf is the SQL test that expr is one of values: 1 when it is, 0
// when not (NULL included). Not "expr IN (…)": SQLite evaluates an IN
// list of more than two values through a temporary B-tree built anew at
// each evaluation, and on a device each rule runs in a trigger at every
// write: those B-trees were most of a local write's cost (ten times the
// capture itself).
func oneOf(expr string, values []string) string {
	var b strings.Builder
	b.WriteString("CASE " + expr)
	for _, v := range values {
		b.WriteString(" WHEN " + quoteLiteral(v) + " THEN 1")
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func mustEnum(name string) Enum {
	e, ok := Lookup(name)
	if !ok {
		panic("domain: no enum " + name)
	}
	return e
}

// enumRule: a single-valued column holds one of the enum's values.
func enumRule(table, col, enum string) Rule {
	e := mustEnum(enum)
	return Rule{
		Name:     "enum_" + table + "_" + col,
		Table:    table,
		Violated: fmt.Sprintf("$.%s IS NOT NULL AND NOT (%s)", col, oneOf("$."+col, e.Values())),
		Message:  fmt.Sprintf("%s doit valoir l'une de ces valeurs : %s", col, strings.Join(e.Values(), ", ")),
	}
}

// listRule: a multi-valued column holds a JSON array of distinct enum
// values. CASE keeps the JSON functions away from text that is not JSON.
// One pass over the list judges each item: not a text, not a value of
// the enum, or equal to an item before it (looked for only from the
// second item on). Duplicates are found by pairs rather than
// COUNT(DISTINCT), which would build a temporary B-tree at each write
// (see oneOf): lists are short. On a device the rule runs at every
// write, and each json_each is a parse of the list: a one-item list
// costs one pass, where a pass for the values and a self-join for the
// duplicates cost three (issue 13).
func listRule(table, col, enum string) Rule {
	e := mustEnum(enum)
	c := "$." + col
	return Rule{
		Name:  "enum_" + table + "_" + col,
		Table: table,
		Violated: fmt.Sprintf(`CASE WHEN %[1]s IS NULL THEN 0
		WHEN NOT json_valid(%[1]s) THEN 1
		WHEN json_type(%[1]s) != 'array' THEN 1
		WHEN EXISTS (SELECT 1 FROM json_each(%[1]s) a WHERE a.type != 'text' OR NOT (%[2]s)
			OR (a.key > 0 AND EXISTS (SELECT 1 FROM json_each(%[1]s) b WHERE b.key < a.key AND b.value = a.value))) THEN 1
		ELSE 0 END`, c, oneOf("a.value", e.Values())),
		Message: fmt.Sprintf(`%s doit être une liste JSON de valeurs distinctes parmi : %s (par exemple ["%s"])`,
			col, strings.Join(e.Values(), ", "), e.Options[0].Value),
	}
}

func boolRule(table, col string) Rule {
	return Rule{
		Name:     "booleen_" + table + "_" + col,
		Table:    table,
		Violated: fmt.Sprintf("$.%s IS NOT NULL AND $.%s NOT IN (0, 1)", col, col),
		Message:  col + " vaut 0 ou 1",
	}
}

func inseeRule(table, col string) Rule {
	return Rule{
		Name:  "code_insee_" + table + "_" + col,
		Table: table,
		// Corsica's codes start 2A or 2B; every other one is five digits.
		Violated: fmt.Sprintf("$.%s IS NOT NULL AND $.%s NOT GLOB '[0-9][0-9AB][0-9][0-9][0-9]'", col, col),
		Message:  col + " doit être un code INSEE de commune (5 caractères, par exemple 53130)",
	}
}

func dateRule(table, col string) Rule {
	return Rule{
		Name:  "date_" + table + "_" + col,
		Table: table,
		// date() normalises impossible days (30 February), so comparing
		// with it refuses them too.
		Violated: fmt.Sprintf("$.%s IS NOT NULL AND ($.%s NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' OR date($.%s) IS NOT $.%s)", col, col, col, col),
		Message:  col + " doit être une date AAAA-MM-JJ valide",
	}
}

func dureeRule(table string) Rule {
	return Rule{
		Name:     "duree_" + table,
		Table:    table,
		Violated: "$.duree IS NOT NULL AND ($.duree < 1 OR $.duree > 1440)",
		Message:  "la durée se compte en minutes, entre 1 minute et 24 heures (1440)",
	}
}

// hasTheme is an SQL test that the JSON list in col contains value.
func hasTheme(col, value string) string {
	return fmt.Sprintf("CASE WHEN json_valid($.%[1]s) AND json_type($.%[1]s) = 'array' THEN EXISTS (SELECT 1 FROM json_each($.%[1]s) WHERE value = %[2]s) ELSE 0 END",
		col, quoteLiteral(value))
}

func filled(col string) string { return fmt.Sprintf("COALESCE(trim($.%s), '') != ''", col) }

// PersonalColumns are the beneficiary's personal data: what erasure
// clears, what an anonymous beneficiary may not hold.
var PersonalColumns = []string{"prenom", "nom", "telephone", "email", "adresse", "notes"}

// Rules returns every rule, the Coop's cross-column rules first, then the
// value checks of each enum, boolean, code and date column.
func Rules() []Rule {
	admin := make([]string, len(ThematiquesAdministratives))
	for i, o := range ThematiquesAdministratives {
		admin[i] = o.Value
	}
	anyPersonal := make([]string, len(PersonalColumns))
	for i, c := range PersonalColumns {
		anyPersonal[i] = "$." + c + " IS NOT NULL"
	}
	var counts []string
	for _, c := range participantCounts {
		counts = append(counts, "$."+c+" < 0")
	}
	rules := []Rule{
		{
			Name:  "thematiques_administratives",
			Table: "activite",
			// One pass over the list: an administrative theme, and
			// none of them Aide aux démarches.
			Violated: fmt.Sprintf(`CASE WHEN json_valid($.thematiques) AND json_type($.thematiques) = 'array'
			THEN (SELECT COALESCE(max(%s), 0) = 1 AND COALESCE(max(value = %s), 0) = 0 FROM json_each($.thematiques))
			ELSE 0 END`, oneOf("value", admin), quoteLiteral(AideAuxDemarches)),
			Message: "les thématiques administratives (papiers, logement, impôts…) demandent aussi la thématique « Aide aux démarches administratives »",
		},
		{
			Name:     "precisions_demarche",
			Table:    "activite",
			Violated: fmt.Sprintf("%s AND NOT (%s)", filled("precisions_demarche"), hasTheme("thematiques", AideAuxDemarches)),
			Message:  "les précisions sur la démarche ne s'indiquent qu'avec la thématique « Aide aux démarches administratives »",
		},
		{
			Name:     "structure_lieu_activite",
			Table:    "activite",
			Violated: fmt.Sprintf("($.type_lieu IS 'lieu_activite') != (%s)", filled("structure_id")),
			Message:  "une structure s'indique quand le lieu est « Lieu d'activité », et seulement dans ce cas",
		},
		{
			Name:     "commune_domicile_autre",
			Table:    "activite",
			Violated: fmt.Sprintf("$.type_lieu IN ('domicile', 'autre') AND NOT (%s)", filled("commune")),
			Message:  "une activité « À domicile » ou « Autre lieu » demande la commune",
		},
		dureeRule("activite"),
		dateRule("activite", "date"),
		{
			// A typo in the year (2062 for 2026) makes an activity that
			// no statistic will ever count; planned meetings are
			// rendez_vous rows, not activities. Judged on each side's own
			// clock: the device's at write time, the server's at push.
			Name:     "activite_dans_le_futur",
			Table:    "activite",
			Violated: "$.date IS NOT NULL AND date($.date) > date('now', '+31 days')",
			Message:  "la date de l'activité est à plus d'un mois dans le futur : vérifiez l'année",
		},
		{
			Name:     "beneficiaire_identifie",
			Table:    "beneficiaire",
			Violated: fmt.Sprintf("COALESCE($.anonyme, 0) = 0 AND NOT (%s AND %s)", filled("prenom"), filled("nom")),
			Message:  "un bénéficiaire identifié (non anonyme) a un prénom et un nom",
		},
		{
			Name:     "beneficiaire_anonyme",
			Table:    "beneficiaire",
			Violated: "$.anonyme = 1 AND (" + strings.Join(anyPersonal, " OR ") + ")",
			Message:  "un bénéficiaire anonyme ne garde ni nom, ni prénom, ni téléphone, ni e-mail, ni adresse, ni notes",
		},
		{
			Name:     "annee_naissance",
			Table:    "beneficiaire",
			Violated: "$.annee_naissance IS NOT NULL AND ($.annee_naissance < 1900 OR $.annee_naissance > CAST(strftime('%Y', 'now') AS INTEGER))",
			Message:  "l'année de naissance est comprise entre 1900 et l'année en cours",
		},
		{
			Name:  "rendez_vous_horaires",
			Table: "rendez_vous",
			Violated: `($.debut IS NOT NULL AND julianday($.debut) IS NULL) OR ($.fin IS NOT NULL AND julianday($.fin) IS NULL)
			OR julianday($.fin) < julianday($.debut)`,
			Message: "début et fin sont des dates-heures ISO 8601, et la fin ne précède pas le début",
		},
		{
			Name:  "participants_anonymes_comptes",
			Table: "participants_anonymes",
			Violated: strings.Join(counts, " OR ") +
				" OR " + sumOver("genre_") + " OR " + sumOver("tranche_age_") + " OR " + sumOver("statut_social_") +
				" OR COALESCE($.deja_accompagne, 0) > COALESCE($.total, 0)",
			Message: "les effectifs sont positifs, et aucune répartition (genre, âge, statut) ne dépasse le total",
		},
		dureeRule("activite_coordination"),
		dateRule("activite_coordination", "date"),
	}
	rules = append(rules,
		enumRule("activite", "type", TypeActivite),
		enumRule("activite", "type_lieu", TypeLieu),
		enumRule("activite", "autonomie", Autonomie),
		enumRule("activite", "structure_de_redirection", StructureDeRedirection),
		enumRule("activite", "niveau", Niveau),
		listRule("activite", "thematiques", Thematique),
		listRule("activite", "materiel", Materiel),
		boolRule("activite", "oriente_vers_structure"),
		inseeRule("activite", "code_insee"),
		enumRule("beneficiaire", "genre", Genre),
		enumRule("beneficiaire", "tranche_age", TrancheAge),
		enumRule("beneficiaire", "statut_social", StatutSocial),
		boolRule("beneficiaire", "anonyme"),
		boolRule("beneficiaire", "pas_de_telephone"),
		inseeRule("beneficiaire", "commune_code_insee"),
		boolRule("accompagnement", "premier_accompagnement"),
		enumRule("rendez_vous", "statut", StatutRendezVous),
		boolRule("rendez_vous", "collectif"),
		inseeRule("rendez_vous", "code_insee"),
		enumRule("structure", "itinerance", Itinerance),
		inseeRule("structure", "code_insee"),
		Rule{
			Name:     "siret_structure",
			Table:    "structure",
			Violated: "$.siret IS NOT NULL AND $.siret NOT GLOB '" + strings.Repeat("[0-9]", 14) + "'",
			Message:  "le SIRET s'écrit avec ses 14 chiffres, sans espace",
		},
		enumRule("activite_coordination", "type", TypeActiviteCoordination),
		enumRule("activite_coordination", "echelon_territorial", EchelonTerritorial),
	)
	return rules
}

// EnumColumn is a column that holds values of an enum: one value, or a
// JSON list of them (List).
type EnumColumn struct {
	Table, Column, Enum string
	List                bool
}

// EnumColumns are the columns Rules checks against an enum, for forms
// that offer the enum's labels (the app's spec). A test keeps the list
// and the rules' enum_ checks equal.
var EnumColumns = []EnumColumn{
	{"activite", "type", TypeActivite, false},
	{"activite", "type_lieu", TypeLieu, false},
	{"activite", "autonomie", Autonomie, false},
	{"activite", "structure_de_redirection", StructureDeRedirection, false},
	{"activite", "niveau", Niveau, false},
	{"activite", "thematiques", Thematique, true},
	{"activite", "materiel", Materiel, true},
	{"beneficiaire", "genre", Genre, false},
	{"beneficiaire", "tranche_age", TrancheAge, false},
	{"beneficiaire", "statut_social", StatutSocial, false},
	{"rendez_vous", "statut", StatutRendezVous, false},
	{"structure", "itinerance", Itinerance, false},
	{"activite_coordination", "type", TypeActiviteCoordination, false},
	{"activite_coordination", "echelon_territorial", EchelonTerritorial, false},
}

// participantCounts are the count columns of participants_anonymes.
var participantCounts = func() []string {
	cols := []string{"total", "deja_accompagne"}
	for _, e := range []string{Genre, TrancheAge, StatutSocial} {
		for _, v := range mustEnum(e).Values() {
			cols = append(cols, e+"_"+v)
		}
	}
	return cols
}()

// sumOver is an SQL test that the counts starting with prefix add up to
// more than the total.
func sumOver(prefix string) string {
	var terms []string
	for _, c := range participantCounts {
		if strings.HasPrefix(c, prefix) {
			terms = append(terms, "COALESCE($."+c+", 0)")
		}
	}
	return "(" + strings.Join(terms, " + ") + ") > COALESCE($.total, 0)"
}

// RuleByName returns a rule by its name.
func RuleByName(name string) (Rule, bool) {
	for _, r := range Rules() {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}
