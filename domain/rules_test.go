package domain_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// base returns a valid row of each table: every case starts from it and
// changes a few columns.
func base(table, owner string) map[string]any {
	switch table {
	case "activite":
		return map[string]any{"mediateur_id": owner, "type": "individuel", "date": "2025-03-14", "duree": 45,
			"type_lieu": "domicile", "commune": "Laval", "code_insee": "53130", "code_postal": "53000",
			"thematiques": `["email","navigation_sur_internet"]`, "materiel": `["tablette"]`, "autonomie": "partiellement_autonome",
			"oriente_vers_structure": 0}
	case "beneficiaire":
		return map[string]any{"mediateur_id": owner, "anonyme": 0, "prenom": "Odette", "nom": "Lebreton",
			"annee_naissance": 1947, "genre": "feminin", "tranche_age": "soixante_dix_plus", "statut_social": "retraite",
			"commune": "Évron", "commune_code_postal": "53600", "commune_code_insee": "53097", "pas_de_telephone": 0}
	case "rendez_vous":
		return map[string]any{"mediateur_id": owner, "debut": "2025-03-14T09:00:00Z", "fin": "2025-03-14T10:00:00Z",
			"statut": "unknown", "collectif": 0, "commune": "Laval", "code_insee": "53130"}
	case "participants_anonymes":
		return map[string]any{"mediateur_id": owner, "total": 6, "deja_accompagne": 2, "genre_feminin": 4, "genre_masculin": 2,
			"tranche_age_soixante_dix_plus": 5, "tranche_age_non_communique": 1, "statut_social_retraite": 6}
	case "activite_coordination":
		return map[string]any{"mediateur_id": owner, "type": "animation", "date": "2025-05-20", "duree": 120,
			"echelon_territorial": "departemental", "intitule": "Réunion du réseau"}
	case "structure":
		return map[string]any{"nom": "France Services de Mayenne", "commune": "Mayenne", "code_insee": "53147",
			"code_postal": "53100", "itinerance": "fixe"}
	case "accompagnement":
		return map[string]any{"mediateur_id": owner, "activite_id": newID(), "beneficiaire_id": newID(), "premier_accompagnement": 1}
	}
	panic("no base row for " + table)
}

type ruleCase struct {
	name  string
	table string
	set   map[string]any // columns changed from the base row (nil value clears)
	rule  string         // the rule that refuses it, "" if accepted
}

// ruleCases: for each cross-column rule, rows on both sides of it; for
// each value rule, one bad value (generated, so a new rule is covered).
func ruleCases() []ruleCase {
	structureID := newID()
	cases := []ruleCase{
		{"activite valide", "activite", nil, ""},
		{"démarche avec sous-thèmes et précisions", "activite", map[string]any{
			"thematiques": `["aide_aux_demarches_administratives","argent_impots","logement"]`, "precisions_demarche": "Déclaration de revenus en ligne"}, ""},
		{"sous-thème administratif sans aide aux démarches", "activite", map[string]any{"thematiques": `["email","argent_impots"]`}, "thematiques_administratives"},
		{"précisions sans aide aux démarches", "activite", map[string]any{"precisions_demarche": "CAF"}, "precisions_demarche"},
		{"précisions vides sans aide aux démarches", "activite", map[string]any{"precisions_demarche": "  "}, ""},
		{"lieu d'activité avec structure", "activite", map[string]any{"type_lieu": "lieu_activite", "structure_id": structureID, "commune": nil, "code_insee": nil}, ""},
		{"lieu d'activité sans structure", "activite", map[string]any{"type_lieu": "lieu_activite", "commune": nil}, "structure_lieu_activite"},
		{"domicile avec structure", "activite", map[string]any{"structure_id": structureID}, "structure_lieu_activite"},
		{"à distance sans commune", "activite", map[string]any{"type_lieu": "a_distance", "commune": nil, "code_insee": nil}, ""},
		{"domicile sans commune", "activite", map[string]any{"commune": nil}, "commune_domicile_autre"},
		{"autre lieu, commune vide", "activite", map[string]any{"type_lieu": "autre", "commune": ""}, "commune_domicile_autre"},
		{"durée 1 minute", "activite", map[string]any{"duree": 1}, ""},
		{"durée 24 heures", "activite", map[string]any{"duree": 1440}, ""},
		{"durée nulle", "activite", map[string]any{"duree": 0}, "duree_activite"},
		{"durée au-delà de 24 heures", "activite", map[string]any{"duree": 1441}, "duree_activite"},
		{"thématiques en double", "activite", map[string]any{"thematiques": `["email","email"]`}, "enum_activite_thematiques"},
		{"thématiques pas en JSON", "activite", map[string]any{"thematiques": "email"}, "enum_activite_thematiques"},
		{"thématiques liste vide", "activite", map[string]any{"thematiques": `[]`}, ""},
		{"date impossible", "activite", map[string]any{"date": "2025-02-30"}, "date_activite_date"},
		{"date dans 40 ans", "activite", map[string]any{"date": time.Now().AddDate(40, 0, 0).Format(time.DateOnly)}, "activite_dans_le_futur"},
		{"code INSEE corse", "activite", map[string]any{"code_insee": "2A004"}, ""},
		{"bénéficiaire identifié", "beneficiaire", nil, ""},
		{"bénéficiaire identifié sans nom", "beneficiaire", map[string]any{"nom": nil}, "beneficiaire_identifie"},
		{"bénéficiaire identifié sans prénom", "beneficiaire", map[string]any{"prenom": " "}, "beneficiaire_identifie"},
		{"bénéficiaire anonyme", "beneficiaire", map[string]any{"anonyme": 1, "prenom": nil, "nom": nil}, ""},
		{"bénéficiaire anonyme avec téléphone", "beneficiaire", map[string]any{"anonyme": 1, "prenom": nil, "nom": nil, "telephone": "0243000000"}, "beneficiaire_anonyme"},
		{"année de naissance trop ancienne", "beneficiaire", map[string]any{"annee_naissance": 1899}, "annee_naissance"},
		{"année de naissance 1900", "beneficiaire", map[string]any{"annee_naissance": 1900, "tranche_age": "soixante_dix_plus"}, ""},
		{"rendez-vous valide", "rendez_vous", nil, ""},
		{"rendez-vous fini avant d'avoir commencé", "rendez_vous", map[string]any{"fin": "2025-03-14T08:00:00Z"}, "rendez_vous_horaires"},
		{"rendez-vous à l'heure illisible", "rendez_vous", map[string]any{"debut": "demain matin"}, "rendez_vous_horaires"},
		{"participants valides", "participants_anonymes", nil, ""},
		{"participants : plus de femmes que de participants", "participants_anonymes", map[string]any{"genre_feminin": 7}, "participants_anonymes_comptes"},
		{"participants : effectif négatif", "participants_anonymes", map[string]any{"genre_masculin": -1, "genre_feminin": 4}, "participants_anonymes_comptes"},
		{"participants : déjà accompagnés au-delà du total", "participants_anonymes", map[string]any{"deja_accompagne": 7}, "participants_anonymes_comptes"},
		{"activité de coordination valide", "activite_coordination", nil, ""},
		{"activité de coordination sans durée possible", "activite_coordination", map[string]any{"duree": 2000}, "duree_activite_coordination"},
		{"structure valide", "structure", nil, ""},
		{"structure avec SIRET", "structure", map[string]any{"siret": "13000548100010"}, ""},
		{"accompagnement valide", "accompagnement", nil, ""},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.rule] = true
	}
	for _, r := range domain.Rules() {
		if covered[r.Name] {
			continue
		}
		col := r.Columns()[0]
		var bad any
		switch {
		case strings.HasPrefix(r.Name, "enum_") && strings.Contains(r.Violated, "json_each"):
			bad = `["valeur_inconnue"]`
		case strings.HasPrefix(r.Name, "enum_"):
			bad = "valeur_inconnue"
		case strings.HasPrefix(r.Name, "booleen_"):
			bad = 2
		case strings.HasPrefix(r.Name, "code_insee_"):
			bad = "5313"
		case strings.HasPrefix(r.Name, "siret_"):
			bad = "130 005 481 00010"
		case strings.HasPrefix(r.Name, "date_"):
			bad = "14/03/2025"
		default:
			continue // a hand-written rule without a case: the coverage test fails
		}
		cases = append(cases, ruleCase{"valeur refusée: " + r.Name, r.Table, map[string]any{col: bad}, r.Name})
	}
	return cases
}

func (c ruleCase) row(owner string) map[string]any {
	row := base(c.table, owner)
	maps.Copy(row, c.set)
	for k, v := range row {
		if v == nil {
			delete(row, k)
		}
	}
	return row
}

func TestEveryRuleHasARefusedCase(t *testing.T) {
	refused := map[string]bool{}
	for _, c := range ruleCases() {
		refused[c.rule] = true
	}
	for _, r := range domain.Rules() {
		if !refused[r.Name] {
			t.Errorf("rule %s has no case that breaks it", r.Name)
		}
	}
}

func insertSQL(table string, row map[string]any, id string) (string, []any) {
	cols := slices.Sorted(maps.Keys(row))
	args := []any{id}
	for _, c := range cols {
		args = append(args, row[c])
	}
	q := fmt.Sprintf(`INSERT INTO "%s" (id, "%s") VALUES (?%s)`, table, strings.Join(cols, `", "`), strings.Repeat(", ?", len(cols)))
	return q, args
}

// TestRulesOnDevice writes each case with plain SQL on a real device
// replica: INSERT of the row, and UPDATE of a valid row into it. A
// refused write fails with the rule's name and leaves nothing behind,
// not even in the outbox.
func TestRulesOnDevice(t *testing.T) {
	ctx := context.Background()
	dev := relaistest.OpenDevice(t, "rules", devOpts())
	db := dev.DB()
	owner := newID()
	for _, c := range ruleCases() {
		t.Run(c.name, func(t *testing.T) {
			id := newID()
			q, args := insertSQL(c.table, c.row(owner), id)
			_, err := db.ExecContext(ctx, q, args...)
			checkDeviceError(t, err, c.rule)
			if c.rule == "" {
				return
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM _outbox WHERE pk = ?) + (SELECT COUNT(*) FROM "+c.table+" WHERE id = ?)", id, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("refused insert left %d rows or outbox entries", n)
			}
			// The same through an UPDATE of a valid row.
			q, args = insertSQL(c.table, base(c.table, owner), id)
			if _, err := db.ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("valid base row refused: %v", err)
			}
			var set []string
			var uargs []any
			for _, col := range slices.Sorted(maps.Keys(c.set)) {
				set = append(set, `"`+col+`" = ?`)
				uargs = append(uargs, c.set[col])
			}
			_, err = db.ExecContext(ctx, "UPDATE "+c.table+" SET "+strings.Join(set, ", ")+" WHERE id = ?", append(uargs, id)...)
			checkDeviceError(t, err, c.rule)
		})
	}
}

func checkDeviceError(t *testing.T, err error, rule string) {
	t.Helper()
	if rule == "" {
		if err != nil {
			t.Fatalf("valid row refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("row breaking %s accepted", rule)
	}
	if want := "relais: rule " + rule + ":"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
}

// TestRulesOnServer pushes each case, as a device without triggers would,
// to a real server on loopback: refused rows are answered invalid_row
// with the rule in details and leave no cell and no row.
func TestRulesOnServer(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "regles@exemple.fr", "admin", "motdepasse1")
	d := newRawDevice(t, srv, "regles@exemple.fr", "motdepasse1")
	for _, c := range ruleCases() {
		t.Run(c.name, func(t *testing.T) {
			id := newID()
			perr := d.push(c.table, id, c.row(u.ID))
			if c.rule == "" {
				if perr != nil {
					t.Fatalf("valid row refused: %v", perr)
				}
				if rowCount(t, srv, c.table, id) != 1 {
					t.Fatal("valid row not stored")
				}
				return
			}
			if perr == nil {
				t.Fatalf("row breaking %s accepted", c.rule)
			}
			if perr.Code != "invalid_row" || perr.Details["rule"] != c.rule {
				t.Fatalf("got %s %v, want invalid_row with rule %s", perr.Code, perr.Details, c.rule)
			}
			if rowCount(t, srv, c.table, id) != 0 || cellCount(t, srv, id) != 0 {
				t.Fatal("refused batch left data on the server")
			}
		})
	}
}
