package device

import (
	"fmt"
	"strings"

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

// The device's own account, as learnt at login (migration 00042).
const (
	deviceUser = "(SELECT user_id FROM _device WHERE id = 1)"
	deviceRole = "(SELECT role FROM _device WHERE id = 1)"
)

// ownerTriggers returns the SQL of the triggers that catch on the device,
// at write time and with a French message, the writes the server would
// refuse for their owner, so that they never leave the tablet:
//
//   - in an owned table, a conseillère or coordinator may write only her
//     own rows: a new row naming someone else, an edit or a delete of a
//     row of someone else (a coordinator's team rows), or handing a row
//     to someone else, are refused;
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
	guard := fmt.Sprintf("%s AND %s IN ('conseiller', 'coordinateur') AND %s IS NOT NULL", when, deviceRole, deviceUser)
	name := func(t, what string) string { return quoteIdent("_check_owner_" + t + "_" + what) }
	for _, t := range schema.TableNames() {
		q := quoteIdent(t)
		_, owned := schema.Tables[t].Columns[ownerColumn]
		if !owned || adminTables[t] {
			msg := quoteLiteral("relais: " + t + " : les structures, les équipes et les tables de référence sont gérées par les administrateurs ; cette modification serait refusée par le serveur")
			for _, op := range []string{"INSERT", "UPDATE", "DELETE"} {
				out = append(out, fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s);\nEND",
					name(t, strings.ToLower(op)), op, q, guard, msg))
			}
			continue
		}
		o := quoteIdent(ownerColumn)
		notMine := quoteLiteral("relais: cette fiche doit être à votre nom : " + ownerColumn + " doit être votre identifiant (laissez-le vide, l'appareil le remplit)")
		theirs := quoteLiteral("relais: cette fiche appartient à une autre personne (de votre équipe, peut-être) : seul·e son auteur·rice peut la modifier ou la supprimer")
		handOver := quoteLiteral("relais: une fiche ne peut pas être attribuée à quelqu'un d'autre : " + ownerColumn + " doit rester votre identifiant")
		out = append(out,
			fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s) WHERE NEW.%s IS NOT NULL AND NEW.%s IS NOT %s;\nEND",
				name(t, "insert"), q, guard, notMine, o, o, deviceUser),
			fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN %s AND NEW.%s IS NULL\nBEGIN\n    UPDATE %s SET %s = %s WHERE id = NEW.id;\nEND",
				name(t, "fill"), q, guard, o, q, o, deviceUser),
			// An old owner of NULL is a row this device wrote before it
			// knew its account: she may still make it hers.
			fmt.Sprintf("CREATE TRIGGER %s BEFORE UPDATE ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s) WHERE OLD.%s IS NOT NULL AND OLD.%s IS NOT %s;\n    SELECT RAISE(ABORT, %s) WHERE NEW.%s IS NOT %s AND NOT (OLD.%s IS NULL AND NEW.%s IS NULL);\nEND",
				name(t, "update"), q, guard, theirs, o, o, deviceUser, handOver, o, deviceUser, o, o),
			fmt.Sprintf("CREATE TRIGGER %s BEFORE DELETE ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, %s) WHERE OLD.%s IS NOT NULL AND OLD.%s IS NOT %s;\nEND",
				name(t, "delete"), q, guard, theirs, o, o, deviceUser),
		)
	}
	return out
}
