package web

import (
	"fmt"
	"strings"
)

// French names of tables and columns, as coordinators know them from the
// Coop's forms. Enum values' labels come from enumLabel.
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

// enumLabels holds the Coop's official French labels (domain reference)
// for the enum columns the dashboard shows.
var enumLabels = map[string]map[string]string{
	"type": {"individuel": "Accompagnement individuel", "collectif": "Atelier collectif"},
	"type_lieu": {"lieu_activite": "Lieu d'activité", "domicile": "À domicile", "a_distance": "À distance",
		"autre": "Autre lieu"},
	"autonomie": {"entierement_accompagne": "Avec guidage", "partiellement_autonome": "Autonome avec guidage en cas de besoin",
		"autonome": "Autonome"},
	"genre": {"masculin": "Masculin", "feminin": "Féminin", "non_communique": "Non communiqué"},
	"tranche_age": {"moins_de_douze": "Moins de 12 ans", "douze_dix_huit": "12 - 17 ans",
		"dix_huit_vingt_quatre": "18 - 24 ans", "vingt_cinq_trente_neuf": "25 - 39 ans",
		"quarante_cinquante_neuf": "40 - 59 ans", "soixante_soixante_neuf": "60 - 69 ans",
		"soixante_dix_plus": "70 ans et plus", "non_communique": "Non communiqué"},
	"statut_social": {"scolarise": "Scolarisé", "sans_emploi": "Sans emploi", "en_emploi": "En emploi",
		"retraite": "Retraité", "non_communique": "Non communiqué ou hétérogène"},
	"materiel": {"ordinateur": "Ordinateur", "telephone": "Téléphone", "tablette": "Tablette", "autre": "Autre",
		"aucun": "Pas de matériel"},
	"niveau":     {"debutant": "Débutant", "intermediaire": "Intermédiaire", "avance": "Avancé"},
	"itinerance": {"itinerant": "Itinérant", "fixe": "Fixe"},
	"structure_de_redirection": {"administration": "Administration (mairie, préfecture…)",
		"mediation_numerique":              "Autre structure de médiation numérique",
		"operateur_ou_organisme_en_charge": "Opérateur ou organisme en charge de la démarche administrative",
		"aide_sociale":                     "Structure d'aide sociale", "insertion_professionnelle": "Structure d'insertion professionnelle",
		"aide_aux_demarches_administratives": "Structure d'aide aux démarches administratives (France Services…)",
		"autre":                              "Autre"},
	"thematiques": {
		"diagnostic_numerique": "Diagnostic numérique", "prendre_en_main_du_materiel": "Prendre en main du matériel",
		"maintenance_de_materiel": "Maintenance de matériel", "gere_ses_contenus_numeriques": "Gérer ses contenus numériques",
		"navigation_sur_internet": "Navigation sur internet", "email": "E-mail", "bureautique": "Bureautique",
		"reseaux_sociaux": "Réseaux sociaux communication", "sante": "Santé",
		"banque_et_achats_en_ligne": "Banque et achats en ligne", "entrepreneuriat": "Accompagner un professionnel",
		"insertion_professionnelle": "Insertion professionnelle", "securite_numerique": "Prévention en sécurité numérique",
		"parentalite": "Parentalité", "scolarite_et_numerique": "Scolarité et numérique",
		"creer_avec_le_numerique": "Créer avec le numérique", "culture_numerique": "Culture numérique",
		"intelligence_artificielle":          "Intelligence artificielle (IA)",
		"aide_aux_demarches_administratives": "Aide aux démarches administratives",
		"papiers_elections_citoyennete":      "Papiers - Élections - Citoyenneté", "famille_scolarite": "Famille - Scolarité",
		"social_sante": "Social - Santé", "travail_formation": "Travail - Formation - Entreprise", "logement": "Logement",
		"transports_mobilite": "Transports - Mobilité", "argent_impots": "Argent - Impôts", "justice": "Justice",
		"etrangers_europe": "Étrangers - Europe", "loisirs_sports_culture": "Loisirs - Sports - Culture",
		"associations": "Associations"},
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
	if l, ok := enumLabels[column][value]; ok {
		return l
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
	if _, ok := enumLabels[column]; ok {
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
