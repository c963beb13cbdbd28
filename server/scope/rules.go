// Package scope decides who sees and writes which synced rows, from the
// principal's user id and role and from the database (coordination and
// mediateur_en_activite rows), never from anything a client claims.
//
// The rules, after the Coop de la médiation numérique's:
//   - an administrator sees and writes everything;
//   - a row of a table with an owner column (mediateur_id) belongs to that
//     user: its owner pulls it and is the only one who may write it, and
//     may not hand it to someone else;
//   - a coordinator also pulls the rows of the médiateurs they coordinate
//     (table by table, see teamTables), each dated inside a coordination:
//     activities by their date, accompaniments and anonymous participants
//     by their activity's, beneficiaries by the activities they were
//     accompanied in, and without their personal columns;
//   - reference rows (structures) reach those who work there (and their
//     coordinators); team rows (coordination, mediateur_en_activite)
//     reach the people they name; only administrators write them;
//   - any other table is closed: administrators only. A new table is
//     therefore invisible until it has an owner column or a rule here.
//
// Pulls are filtered a page at a time: the owners (and dates) of a page's
// rows are read in one query per table, and a principal's team and
// structures once per exchange, so no query runs per cell.
package scope

import (
	"slices"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/syncproto"
)

// OwnerColumn names the owner of a row in every owned table.
const OwnerColumn = "mediateur_id"

// Roles, as stored in _users.role.
const (
	RoleConseiller   = "conseiller"
	RoleCoordinateur = "coordinateur"
	RoleAdmin        = "admin"
)

// Who is the principal a decision is made for, as read from the database
// by authentication.
type Who struct {
	UserID string
	Role   string
}

type kind int

const (
	kindClosed       kind = iota // administrators only
	kindOwned                    // rows belong to the user in OwnerColumn
	kindStructure                // reference data: visible where one works
	kindCoordination             // the coordination table
	kindEnActivite               // the mediateur_en_activite table
)

// teamRule says what a coordinator receives of a coordinated médiateur's
// rows in one owned table.
//
// Every row a coordinator receives is dated, and only the rows dated
// inside a coordination of their owner reach them: a coordinator follows
// a médiateur's work while coordinating them, not their whole history
// nor what comes after (data minimisation, GDPR art. 5).
type teamRule struct {
	// dateColumn, when set, limits the rows to those dated inside a
	// coordination's [debut, fin].
	dateColumn string
	// byActivity, when set, names the column that links a row to its
	// activity: the row is dated by that activity's date.
	byActivity string
	// byAccompaniment dates a row (a beneficiary) by the activities it
	// was accompanied in (accompagnement.beneficiaire_id): it reaches a
	// coordinator when one of them is dated inside a coordination. A
	// beneficiary never accompanied reaches no coordinator.
	byAccompaniment bool
	// hidden columns are never sent to a coordinator: personal data stays
	// with the médiateur who collected it.
	hidden []string
}

// linked reports whether rows are dated through other rows.
func (t *teamRule) linked() bool { return t.byActivity != "" || t.byAccompaniment }

// teamTables lists the owned tables a coordinator receives for the
// médiateurs they coordinate. Tables not listed (appointments, with home
// addresses; a coordinator's own activities) stay with their owner.
var teamTables = map[string]teamRule{
	"activite":              {dateColumn: "date", hidden: []string{"notes"}},
	"beneficiaire":          {byAccompaniment: true, hidden: domain.PersonalColumns},
	"accompagnement":        {byActivity: "activite_id"},
	"participants_anonymes": {byActivity: "activite_id"},
}

// PersonalColumns returns the columns of table a coordinator never
// receives for rows they do not own.
func PersonalColumns(table string) []string {
	return slices.Clone(teamTables[table].hidden)
}

type policy struct {
	kind kind
	team *teamRule // for owned tables a coordinator sees; nil otherwise
}

// Rules are the policies of a schema's tables.
type Rules struct {
	tables map[string]policy
	schema *syncproto.Schema // to read rows' values as held (replica.Values)
}

// NewRules derives each table's policy from the schema: its name for the
// reference and team tables, its owner column for the others.
func NewRules(schema *syncproto.Schema) *Rules {
	r := &Rules{tables: map[string]policy{}, schema: schema}
	for name, t := range schema.Tables {
		var p policy
		switch name {
		case "structure":
			p.kind = kindStructure
		case "coordination":
			p.kind = kindCoordination
		case "mediateur_en_activite":
			p.kind = kindEnActivite
		default:
			if _, ok := t.Columns[OwnerColumn]; ok {
				p.kind = kindOwned
				if tr, ok := teamTables[name]; ok {
					tr := tr
					p.team = &tr
				}
			}
		}
		r.tables[name] = p
	}
	return r
}

func (r *Rules) policy(table string) policy { return r.tables[table] }

// OwnerColumns maps each owned table to its owner column, for the merge
// to tag cells with their row's owner (replica.Options.Owners): the tags
// are what lets a pull read one person's cells by index.
func (r *Rules) OwnerColumns() map[string]string {
	out := map[string]string{}
	for name, p := range r.tables {
		if p.kind == kindOwned {
			out[name] = OwnerColumn
		}
	}
	return out
}
