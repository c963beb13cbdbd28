package domain

import "slices"

// Option is one value of an enum: what is stored, and what people read.
type Option struct {
	Value string
	Label string
}

// Enum is a named list of values in the order the Coop shows them.
type Enum struct {
	Name    string
	Options []Option
}

// Values returns the stored values, in order.
func (e Enum) Values() []string {
	v := make([]string, len(e.Options))
	for i, o := range e.Options {
		v[i] = o.Value
	}
	return v
}

// Enum names, as used by Label and stored in the _labels table.
const (
	TypeActivite             = "type_activite"
	TypeLieu                 = "type_lieu"
	Materiel                 = "materiel"
	Thematique               = "thematique"
	Autonomie                = "autonomie"
	StructureDeRedirection   = "structure_de_redirection"
	Niveau                   = "niveau"
	Genre                    = "genre"
	TrancheAge               = "tranche_age"
	StatutSocial             = "statut_social"
	StatutRendezVous         = "statut_rendez_vous"
	Itinerance               = "itinerance"
	TypeActiviteCoordination = "type_activite_coordination"
	EchelonTerritorial       = "echelon_territorial"
	DureeTranche             = "duree_tranche"
)

// AideAuxDemarches is the theme that the administrative sub-themes and
// precisions_demarche require.
const AideAuxDemarches = "aide_aux_demarches_administratives"

// ThematiquesNumeriques are the Coop's nineteen digital themes, and
// ThematiquesAdministratives the eleven administrative ones allowed only
// together with AideAuxDemarches.
var (
	ThematiquesNumeriques = []Option{
		{"diagnostic_numerique", "Diagnostic numérique"},
		{"prendre_en_main_du_materiel", "Prendre en main du matériel"},
		{"maintenance_de_materiel", "Maintenance de matériel"},
		{"gere_ses_contenus_numeriques", "Gérer ses contenus numériques"},
		{"navigation_sur_internet", "Navigation sur internet"},
		{"email", "E-mail"},
		{"bureautique", "Bureautique"},
		{"reseaux_sociaux", "Réseaux sociaux communication"},
		{"sante", "Santé"},
		{"banque_et_achats_en_ligne", "Banque et achats en ligne"},
		{"entrepreneuriat", "Accompagner un professionnel"},
		{"insertion_professionnelle", "Insertion professionnelle"},
		{"securite_numerique", "Prévention en sécurité numérique"},
		{"parentalite", "Parentalité"},
		{"scolarite_et_numerique", "Scolarité et numérique"},
		{"creer_avec_le_numerique", "Créer avec le numérique"},
		{"culture_numerique", "Culture numérique"},
		{"intelligence_artificielle", "Intelligence artificielle (IA)"},
		{AideAuxDemarches, "Aide aux démarches administratives"},
	}
	ThematiquesAdministratives = []Option{
		{"papiers_elections_citoyennete", "Papiers - Élections - Citoyenneté"},
		{"famille_scolarite", "Famille - Scolarité"},
		{"social_sante", "Social - Santé"},
		{"travail_formation", "Travail - Formation - Entreprise"},
		{"logement", "Logement"},
		{"transports_mobilite", "Transports - Mobilité"},
		{"argent_impots", "Argent - Impôts"},
		{"justice", "Justice"},
		{"etrangers_europe", "Étrangers - Europe"},
		{"loisirs_sports_culture", "Loisirs - Sports - Culture"},
		{"associations", "Associations"},
	}
)

// Enums lists every enum with its labels, in a stable order. The _labels
// table (migrations/domain/00004) holds the same rows for SQL readers; a
// test keeps the two equal.
var Enums = []Enum{
	{TypeActivite, []Option{
		{"individuel", "Accompagnement individuel"},
		{"collectif", "Atelier collectif"},
	}},
	{TypeLieu, []Option{
		{"lieu_activite", "Lieu d'activité"},
		{"domicile", "À domicile"},
		{"a_distance", "À distance"},
		{"autre", "Autre lieu"},
	}},
	{Materiel, []Option{
		{"ordinateur", "Ordinateur"},
		{"telephone", "Téléphone"},
		{"tablette", "Tablette"},
		{"autre", "Autre"},
		{"aucun", "Pas de matériel"},
	}},
	{Thematique, slices.Concat(ThematiquesNumeriques, ThematiquesAdministratives)},
	{Autonomie, []Option{
		{"entierement_accompagne", "Avec guidage"},
		{"partiellement_autonome", "Autonome avec guidage en cas de besoin"},
		{"autonome", "Autonome"},
	}},
	{StructureDeRedirection, []Option{
		{"administration", "Administration (mairie, préfecture…)"},
		{"mediation_numerique", "Autre structure de médiation numérique"},
		{"operateur_ou_organisme_en_charge", "Opérateur ou organisme en charge de la démarche administrative"},
		{"aide_sociale", "Structure d'aide sociale"},
		{"insertion_professionnelle", "Structure d'insertion professionnelle"},
		{"aide_aux_demarches_administratives", "Structure d'aide aux démarches administratives (France Services…)"},
		{"autre", "Autre"},
	}},
	{Niveau, []Option{
		{"debutant", "Débutant"},
		{"intermediaire", "Intermédiaire"},
		{"avance", "Avancé"},
	}},
	{Genre, []Option{
		{"masculin", "Masculin"},
		{"feminin", "Féminin"},
		{"non_communique", "Non communiqué"},
	}},
	{TrancheAge, []Option{
		{"moins_de_douze", "Moins de 12 ans"},
		{"douze_dix_huit", "12 - 17 ans"},
		{"dix_huit_vingt_quatre", "18 - 24 ans"},
		{"vingt_cinq_trente_neuf", "25 - 39 ans"},
		{"quarante_cinquante_neuf", "40 - 59 ans"},
		{"soixante_soixante_neuf", "60 - 69 ans"},
		{"soixante_dix_plus", "70 ans et plus"},
		{"non_communique", "Non communiqué"},
	}},
	{StatutSocial, []Option{
		{"scolarise", "Scolarisé"},
		{"sans_emploi", "Sans emploi"},
		{"en_emploi", "En emploi"},
		{"retraite", "Retraité"},
		{"non_communique", "Non communiqué ou hétérogène"},
	}},
	{StatutRendezVous, []Option{
		{"unknown", "À venir"},
		{"seen", "Honoré"},
		{"excused", "Annulé par le bénéficiaire"},
		{"revoked", "Annulé"},
		{"noshow", "Absence"},
	}},
	{Itinerance, []Option{
		{"fixe", "Fixe"},
		{"itinerant", "Itinérant"},
	}},
	{TypeActiviteCoordination, []Option{
		{"animation", "Animation"},
		{"evenement", "Événement"},
		{"partenariat", "Partenariat"},
	}},
	{EchelonTerritorial, []Option{
		{"communal", "Communal"},
		{"intercommunal", "Intercommunal"},
		{"departemental", "Départemental"},
		{"regional", "Régional"},
		{"national", "National"},
	}},
	// Not stored: the bands the Coop's statistics group durations in.
	{DureeTranche, []Option{
		{"moins_de_30", "Moins de 30 min"},
		{"30_a_60", "30 min à 1 h"},
		{"60_a_120", "1 h à 2 h"},
		{"120_et_plus", "2 h et plus"},
	}},
}

var labels = func() map[string]map[string]string {
	m := map[string]map[string]string{}
	for _, e := range Enums {
		m[e.Name] = map[string]string{}
		for _, o := range e.Options {
			m[e.Name][o.Value] = o.Label
		}
	}
	return m
}()

// Label returns the French label of an enum value, or the value itself
// when it is unknown (an export must still show something for a value
// a newer version introduced).
func Label(enum, value string) string {
	if l, ok := labels[enum][value]; ok {
		return l
	}
	return value
}

// Lookup returns an enum by name.
func Lookup(name string) (Enum, bool) {
	for _, e := range Enums {
		if e.Name == name {
			return e, true
		}
	}
	return Enum{}, false
}

// DureeTrancheOf returns the statistics band of a duration in minutes.
func DureeTrancheOf(minutes int) string {
	switch {
	case minutes < 30:
		return "moins_de_30"
	case minutes < 60:
		return "30_a_60"
	case minutes < 120:
		return "60_a_120"
	}
	return "120_et_plus"
}

// TrancheAgeOf derives the age bracket from a birth year, as the Coop
// does: the age reached during the reference year.
func TrancheAgeOf(anneeNaissance, referenceYear int) string {
	age := referenceYear - anneeNaissance
	switch {
	case anneeNaissance <= 0 || age < 0:
		return "non_communique"
	case age < 12:
		return "moins_de_douze"
	case age < 18:
		return "douze_dix_huit"
	case age < 25:
		return "dix_huit_vingt_quatre"
	case age < 40:
		return "vingt_cinq_trente_neuf"
	case age < 60:
		return "quarante_cinquante_neuf"
	case age < 70:
		return "soixante_soixante_neuf"
	}
	return "soixante_dix_plus"
}
