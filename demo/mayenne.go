package demo

// Reference data for the Mayenne (53): communes with their INSEE and
// postal codes, approximate centre coordinates and population (used as
// weights), and the places conseillers work in. Structure names are
// generic ("France Services de Craon") rather than the real venues'
// names: the demo must look true without claiming to describe them.

type commune struct {
	Nom        string
	CodePostal string
	CodeInsee  string
	Lat, Lon   float64
	Population int
}

var communes = []commune{
	{"Laval", "53000", "53130", 48.0735, -0.7700, 49700},
	{"Château-Gontier-sur-Mayenne", "53200", "53062", 47.8286, -0.7028, 17100},
	{"Mayenne", "53100", "53147", 48.3031, -0.6136, 13000},
	{"Évron", "53600", "53097", 48.1561, -0.4006, 8500},
	{"Saint-Berthevin", "53940", "53201", 48.0686, -0.8303, 7200},
	{"Changé", "53810", "53054", 48.0989, -0.7886, 6100},
	{"Bonchamp-lès-Laval", "53960", "53034", 48.0747, -0.7003, 5800},
	{"Ernée", "53500", "53096", 48.2975, -0.9319, 5700},
	{"Louverné", "53950", "53140", 48.1217, -0.7178, 4600},
	{"Craon", "53400", "53084", 47.8486, -0.9492, 4500},
	{"L'Huisserie", "53970", "53119", 48.0228, -0.7711, 4200},
	{"Villaines-la-Juhel", "53700", "53271", 48.3422, -0.2778, 3000},
	{"Cossé-le-Vivien", "53230", "53077", 47.9458, -0.9122, 2900},
	{"Meslay-du-Maine", "53170", "53152", 47.9550, -0.5517, 2900},
	{"Ambrières-les-Vallées", "53300", "53003", 48.3961, -0.6203, 2900},
	{"Argentré", "53210", "53007", 48.0833, -0.6433, 2900},
	{"Montsûrs", "53150", "53161", 48.1339, -0.5514, 2700},
	{"Pré-en-Pail-Saint-Samson", "53140", "53185", 48.4594, -0.1986, 2700},
	{"Gorron", "53120", "53107", 48.4108, -0.8139, 2600},
	{"Renazé", "53800", "53188", 47.7933, -1.0553, 2600},
	{"Loiron-Ruillé", "53320", "53137", 48.0672, -0.9350, 2400},
	{"Lassay-les-Châteaux", "53110", "53127", 48.4381, -0.4967, 2300},
	{"Andouillé", "53240", "53005", 48.1775, -0.7878, 2300},
	{"Entrammes", "53260", "53094", 47.9978, -0.7133, 2300},
	{"Quelaines-Saint-Gault", "53360", "53186", 47.9311, -0.8022, 2200},
	{"Martigné-sur-Mayenne", "53470", "53146", 48.2003, -0.6758, 1800},
	{"Montenay", "53500", "53157", 48.2886, -0.8983, 1300},
	{"Sainte-Suzanne-et-Chammes", "53270", "53255", 48.0975, -0.3531, 1300},
	{"Chailland", "53420", "53048", 48.2250, -0.8733, 1100},
}

func communeByName(nom string) commune {
	for _, c := range communes {
		if c.Nom == nom {
			return c
		}
	}
	panic("demo: no commune " + nom)
}

// place is a structure of the demo: where conseillers hold permanences
// or workshops.
type place struct {
	Nom        string
	Typologie  string
	Commune    string
	Adresse    string
	Itinerante bool
}

var places = []place{
	{"France Services de Laval", "France Services", "Laval", "Place du 11 Novembre", false},
	{"France Services de Château-Gontier-sur-Mayenne", "France Services", "Château-Gontier-sur-Mayenne", "Quai d'Alsace", false},
	{"France Services de Mayenne", "France Services", "Mayenne", "Rue de la Madeleine", false},
	{"France Services d'Évron", "France Services", "Évron", "Place de la Basilique", false},
	{"France Services d'Ernée", "France Services", "Ernée", "Rue Aristide Briand", false},
	{"France Services de Craon", "France Services", "Craon", "Rue de la Libération", false},
	{"France Services de Villaines-la-Juhel", "France Services", "Villaines-la-Juhel", "Rue de Javron", false},
	{"France Services de Gorron", "France Services", "Gorron", "Rue de Bretagne", false},
	{"France Services de Meslay-du-Maine", "France Services", "Meslay-du-Maine", "Rue de la Gare", false},
	{"France Services de Pré-en-Pail-Saint-Samson", "France Services", "Pré-en-Pail-Saint-Samson", "Rue Aristide Briand", false},
	{"France Services de Renazé", "France Services", "Renazé", "Rue de Bretagne", false},
	{"France Services de Lassay-les-Châteaux", "France Services", "Lassay-les-Châteaux", "Rue du Château", false},
	{"France Services de Cossé-le-Vivien", "France Services", "Cossé-le-Vivien", "Rue de Nantes", false},
	{"Médiathèque de Laval", "Médiathèque", "Laval", "Rue de la Paix", false},
	{"Médiathèque de Château-Gontier-sur-Mayenne", "Médiathèque", "Château-Gontier-sur-Mayenne", "Place de la République", false},
	{"Médiathèque de Mayenne", "Médiathèque", "Mayenne", "Place Juhel", false},
	{"Médiathèque de Saint-Berthevin", "Médiathèque", "Saint-Berthevin", "Rue de Rennes", false},
	{"Médiathèque d'Évron", "Médiathèque", "Évron", "Rue des Prés", false},
	{"Centre social de Laval, quartier Saint-Nicolas", "Centre social", "Laval", "Avenue de Fougères", false},
	{"Centre social de Laval, quartier des Pommeraies", "Centre social", "Laval", "Rue des Pommeraies", false},
	{"Centre social de Château-Gontier-sur-Mayenne", "Centre social", "Château-Gontier-sur-Mayenne", "Rue de la Maillarderie", false},
	{"Centre social de Mayenne", "Centre social", "Mayenne", "Rue Victor Hugo", false},
	{"Centre social d'Ernée", "Centre social", "Ernée", "Rue Nationale", false},
	{"Mairie de Louverné", "Mairie", "Louverné", "Place de la Mairie", false},
	{"Mairie de Montsûrs", "Mairie", "Montsûrs", "Place de la Mairie", false},
	{"Mairie de Loiron-Ruillé", "Mairie", "Loiron-Ruillé", "Place de la Mairie", false},
	// The PANDA: a cargo tricycle that stops in Laval's priority
	// neighbourhoods. In the Coop's model an itinerant structure.
	{"PANDA, point d'accompagnement numérique itinérant", "Point itinérant", "Laval", "Arrêts dans les quartiers prioritaires", true},
}

// Conseillers' and coordinators' names are invented; so are the
// beneficiaries' below, drawn from common French first and last names.
var staff = []string{
	"Camille Durand", "Julien Lefort", "Sarah Benali", "Thomas Guérin", "Émilie Rousseau", "Nicolas Hamon",
	"Aurélie Pottier", "Kevin Lemoine", "Pauline Barré", "Maxime Chauvin", "Léa Fournier", "Antoine Gilbert",
	"Marion Tessier", "Romain Blanchard", "Chloé Lebrun", "Yacine Haddad", "Justine Collin", "Florian Marchand",
	"Manon Perrin", "Hugo Lecomte", "Inès Roche", "Bastien Morel", "Anaïs Garnier", "Quentin Paris",
}

const coordinatorName = "Sophie Chevalier"

var (
	prenomsF = []string{"Jeanne", "Monique", "Yvette", "Odile", "Lucienne", "Marie-Thérèse", "Colette", "Simone", "Denise", "Françoise",
		"Nicole", "Martine", "Christiane", "Annick", "Josiane", "Brigitte", "Sylvie", "Nadia", "Sandrine", "Aïcha", "Léa", "Emma", "Fatou", "Céline"}
	prenomsM = []string{"Michel", "Bernard", "Gérard", "André", "Jean", "Roger", "Marcel", "Daniel", "Alain", "Jacques",
		"René", "Pierre", "Claude", "Gilbert", "Patrick", "Philippe", "Karim", "Mamadou", "Hugo", "Lucas", "Dylan", "Mehdi"}
	noms = []string{"Martin", "Bernard", "Leroy", "Moreau", "Gautier", "Chevalier", "Lefèvre", "Roussel", "Pichon", "Guérin",
		"Hamon", "Lemaître", "Barbier", "Renaud", "Gendron", "Launay", "Bouvet", "Cosnard", "Fouqué", "Hubert",
		"Jarry", "Lebouc", "Paillard", "Rivière", "Tessier", "Vallée", "Besnier", "Chesnel", "Derouet", "Guillot"}
	rues = []string{"rue de la Paix", "rue du Pont de Mayenne", "place du Marché", "rue Nationale", "chemin des Prés",
		"rue du Général de Gaulle", "allée des Tilleuls", "rue des Écoles", "rue de Bretagne", "impasse des Lilas",
		"route de Laval", "rue Jean Jaurès", "lotissement les Vergers", "rue de l'Église", "rue du Stade"}
	precisions = []string{"Déclaration de revenus en ligne", "Dossier APL sur caf.fr", "Renouvellement de carte d'identité (ANTS)",
		"Création du compte ameli", "Inscription à France Travail", "Demande de carte grise", "Chèque énergie",
		"Dossier de retraite sur info-retraite.fr", "Demande de complémentaire santé solidaire", "Prime d'activité",
		"Prise de rendez-vous en préfecture", "Justificatifs pour la MDPH"}
	ateliers = []struct {
		Titre       string
		Thematiques []string
	}{
		{"Découvrir sa tablette", []string{"prendre_en_main_du_materiel"}},
		{"Premiers pas sur internet", []string{"navigation_sur_internet"}},
		{"Créer et utiliser sa boîte mail", []string{"email"}},
		{"Repérer les arnaques en ligne", []string{"securite_numerique"}},
		{"Sécuriser ses mots de passe", []string{"securite_numerique"}},
		{"Mon espace santé et Doctolib", []string{"sante", "navigation_sur_internet"}},
		{"Appeler ses petits-enfants en visio", []string{"reseaux_sociaux", "prendre_en_main_du_materiel"}},
		{"Ranger et partager ses photos", []string{"gere_ses_contenus_numeriques"}},
		{"Les démarches en ligne de la CAF", []string{"aide_aux_demarches_administratives", "social_sante"}},
		{"Déclarer ses revenus en ligne", []string{"aide_aux_demarches_administratives", "argent_impots"}},
		{"Traitement de texte : écrire une lettre", []string{"bureautique"}},
		{"L'intelligence artificielle au quotidien", []string{"intelligence_artificielle", "culture_numerique"}},
	}
	notesActivite = []string{"Reprendre la semaine prochaine.", "A oublié ses identifiants, à recréer.", "Rendez-vous pris pour la suite.",
		"Orientée vers la CAF pour un dossier papier.", "Très à l'aise, dernière séance.", "Besoin d'un justificatif scanné."}
	notesBeneficiaire = []string{"Malvoyante, prévoir grands caractères.", "Préfère être appelé le matin.", "Aidant de son épouse.",
		"Pas d'ordinateur à domicile.", "Sa fille l'accompagne parfois."}
)
