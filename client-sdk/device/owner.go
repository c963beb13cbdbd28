package device

import (
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/syncproto"
)

// ownerColumn names a row's owner in every owned table, as the server's
// scope rules (package server/scope) say; adminTables are the reference
// and team tables only administrators write. The device mirrors the
// server's rule rather than import it: the server's package reads its
// database, the device only needs the rule's shape, and the server judges
// again anyway.
const ownerColumn = "mediateur_id"

var adminTables = map[string]bool{"structure": true, "coordination": true, "mediateur_en_activite": true}

// The device's own account, as learnt at login (migration 00042). The
// checks read _device once: a row of it, only when the account is one
// whose writes are checked (a conseillère or a coordinator whose id is
// known).
const (
	deviceUser   = "(SELECT user_id FROM _device WHERE id = 1)"
	checkedUser  = "FROM _device WHERE id = 1 AND role IN ('conseiller', 'coordinateur') AND user_id IS NOT NULL"
	ownerChecked = "EXISTS (SELECT 1 " + checkedUser + ")"
)

var (
	notMine  = quoteLiteral("relais: cette fiche doit être à votre nom : " + ownerColumn + " doit être votre identifiant (laissez-le vide, l'appareil le remplit)")
	theirs   = quoteLiteral("relais: cette fiche appartient à une autre personne (de votre équipe, peut-être) : seul·e son auteur·rice peut la modifier ou la supprimer")
	handOver = quoteLiteral("relais: une fiche ne peut pas être attribuée à quelqu'un d'autre : " + ownerColumn + " doit rester votre identifiant")
)

// owned tells whether a table's rows have an owner a conseillère's
// writes are checked against.
func owned(schema *syncproto.Schema, t string) bool {
	_, ok := schema.Tables[t].Columns[ownerColumn]
	return ok && !adminTables[t]
}

// updatedApart returns the column whose UPDATEs get triggers of their
// own on table t (UPDATE OF it), apart from the triggers of the other
// columns' UPDATEs: the owner of an owned table no domain rule reads,
// else "". The fill trigger (ownerTriggers) is an UPDATE of the owner
// inside every INSERT on the table, and SQLite compiles into a
// statement every trigger it might fire, whether or not it fires: with
// the table's full UPDATE triggers (rules, types, capture) compiled in,
// preparing an INSERT cost twice as much as with the owner's own small
// ones, and an application prepares an INSERT at each save (issue 13).
func updatedApart(schema *syncproto.Schema, t string) string {
	if !owned(schema, t) {
		return ""
	}
	for _, r := range domain.RulesFor(schema)[t] {
		if slices.Contains(r.Columns(), ownerColumn) {
			return ""
		}
	}
	return ownerColumn
}

// ownerCheck is the SQL of the owner's check of an INSERT or UPDATE on
// an owned table, for the table's check trigger (checkTriggers): the
// message of the write the server would refuse for its owner, else NULL
// ("" for a table whose rows have no owner):
//
//   - a new row naming someone else;
//   - an edit of a row of someone else (a coordinator's team rows);
//   - handing a row to someone else. An old owner of NULL is a row this
//     device wrote before it knew its account: she may still make it
//     hers.
func ownerCheck(schema *syncproto.Schema, t *syncproto.Table, op string) string {
	if !owned(schema, t.Name) {
		return ""
	}
	o := quoteIdent(ownerColumn)
	if op == "INSERT" {
		return fmt.Sprintf("(SELECT CASE WHEN NEW.%s IS NOT NULL AND NEW.%s IS NOT user_id THEN %s END %s)", o, o, notMine, checkedUser)
	}
	return fmt.Sprintf("(SELECT CASE WHEN OLD.%s IS NOT NULL AND OLD.%s IS NOT user_id THEN %s WHEN NEW.%s IS NOT user_id AND NOT (OLD.%s IS NULL AND NEW.%s IS NULL) THEN %s END %s)",
		o, o, theirs, o, o, o, handOver, checkedUser)
}

// ownerTriggers returns the SQL of the owner's triggers other than the
// checks of INSERT and UPDATE (ownerCheck), which catch on the device, at
// write time and with a French message, the writes the server would
// refuse for their owner, so that they never leave the tablet:
//
//   - in an owned table, a delete of a row of someone else is refused;
//   - a new row that names no owner is given hers (AFTER INSERT: SQLite
//     cannot change NEW in a BEFORE trigger; the fill is an UPDATE the
//     capture triggers send like any other write);
//   - reference and team tables, and tables with no owner, are written by
//     administrators only.
//
// They apply only once the device knows its account's id and role (after
// a login), and never to an administrator, who may write anything; rows
// merged from the server (the guard when) are not judged.
func ownerTriggers(schema *syncproto.Schema, when string) []string {
	var out []string
	guard := when + " AND " + ownerChecked
	name := func(t, what string) string { return quoteIdent("_check_owner_" + t + "_" + what) }
	for _, t := range schema.TableNames() {
		q := quoteIdent(t)
		if !owned(schema, t) {
			msg := quoteLiteral("relais: " + t + " : les structures, les équipes et les tables de référence sont gérées par les administrateurs ; cette modification serait refusée par le serveur")
			for _, op := range []string{"INSERT", "UPDATE", "DELETE"} {
				out = append(out, fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s);\nEND",
					name(t, strings.ToLower(op)), op, q, guard, msg))
			}
			continue
		}
		o := quoteIdent(ownerColumn)
		out = append(out,
			// The owner is tested first: a row that names one, as most
			// do, reads nothing more.
			fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN NEW.%s IS NULL AND %s\nBEGIN\n    UPDATE %s SET %s = %s WHERE id = NEW.id;\nEND",
				name(t, "fill"), q, o, guard, q, o, deviceUser),
			fmt.Sprintf("CREATE TRIGGER %s BEFORE DELETE ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s) %s AND OLD.%s IS NOT NULL AND OLD.%s IS NOT user_id;\nEND",
				name(t, "delete"), q, when, theirs, checkedUser, o, o),
		)
	}
	return out
}
