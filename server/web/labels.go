package web

import (
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/domain"
)

// French names of tables and columns, as coordinators know them from the
// Coop's forms. Enum values' labels come from package domain (enumLabel).
var tableLabels = map[string]string{
	"activite":              "Activité",
	"beneficiaire":          "Bénéficiaire",
	"structure":             "Structure",
	"coordination":          "Coordination",
	"mediateur_en_activite": "Lieu d'activité du médiateur",
	"accompagnement":        "Accompagnement",
	"rendez_vous":           "Rendez-vous",
	"activite_coordination": "Activité de coordination",
}

var columnLabels = map[string]string{
	"_deleted": "Suppression", "mediateur_id": "Médiateur", "type": "Type d'activité", "date": "Date",
	"duree": "Durée (min)", "type_lieu": "Type de lieu", "structure_id": "Structure", "commune": "Commune",
	"code_insee": "Code INSEE", "autonomie": "Autonomie du bénéficiaire", "notes": "Notes", "nom": "Nom",
	"prenom": "Prénom", "telephone": "Téléphone", "email": "E-mail", "adresse": "Adresse",
	"annee_naissance": "Année de naissance", "genre": "Genre", "tranche_age": "Tranche d'âge",
	"statut_social": "Statut social", "anonyme": "Anonyme", "commune_code_postal": "Code postal",
	"commune_code_insee": "Code INSEE de la commune", "code_postal": "Code postal", "siret": "SIRET",
	"latitude": "Latitude", "longitude": "Longitude", "itinerance": "Itinérance", "materiel": "Matériel utilisé",
	"thematiques": "Thématiques", "niveau": "Niveau de l'atelier", "titre_atelier": "Titre de l'atelier",
	"oriente_vers_structure": "Orienté vers une structure", "structure_de_redirection": "Structure de redirection",
	"precisions_demarche": "Précisions sur la démarche", "debut": "Début", "fin": "Fin",
	"coordinateur_id": "Coordinateur", "fusion_vers_id": "Fusionné avec", "beneficiaire_id": "Bénéficiaire",
	"activite_id": "Activité", "premier_accompagnement": "Premier accompagnement",
}

// enumOf names, for each enum column the dashboard shows, the enum of
// package domain that holds its official French labels (one source for
// the labels, shared with the _labels table and the devices).
var enumOf = map[string]string{
	"type":                     domain.TypeActivite,
	"type_lieu":                domain.TypeLieu,
	"autonomie":                domain.Autonomie,
	"genre":                    domain.Genre,
	"tranche_age":              domain.TrancheAge,
	"statut_social":            domain.StatutSocial,
	"materiel":                 domain.Materiel,
	"niveau":                   domain.Niveau,
	"itinerance":               domain.Itinerance,
	"structure_de_redirection": domain.StructureDeRedirection,
	"thematiques":              domain.Thematique,
	"echelon_territorial":      domain.EchelonTerritorial,
}

func tableLabel(t string) string {
	if l, ok := tableLabels[t]; ok {
		return l
	}
	return t
}

func columnLabel(c string) string {
	if l, ok := columnLabels[c]; ok {
		return l
	}
	return c
}

// enumLabel is the French label of one stored enum value, or the value
// itself when it is not a known enum.
func enumLabel(column, value string) string {
	if e, ok := enumOf[column]; ok {
		return domain.Label(e, value)
	}
	return value
}

// valueLabel shows a stored cell value in French: enum labels, lists of
// enum values (stored as a JSON array or comma-separated), booleans of the
// tombstone, and "(vide)" for NULL.
func valueLabel(column string, v any) string {
	switch x := v.(type) {
	case nil:
		return "(vide)"
	case []byte:
		v = string(x)
	}
	s := fmt.Sprint(v)
	if column == "_deleted" {
		if s == "1" {
			return "Supprimé"
		}
		return "Présent"
	}
	if _, ok := enumOf[column]; ok {
		if vals := splitList(s); len(vals) > 1 || (len(vals) == 1 && vals[0] != s) {
			out := make([]string, len(vals))
			for i, x := range vals {
				out[i] = enumLabel(column, x)
			}
			return strings.Join(out, ", ")
		}
		return enumLabel(column, s)
	}
	return s
}

// splitList reads a multi-valued enum cell: a JSON array of strings
// (["a","b"]) or a comma-separated list.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" || s == "[]" {
		return nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.Trim(strings.TrimSpace(part), `"`)
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}
