package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// The scenarios that write on devices (ingest, month, fleet, weak link)
// need rows of one conseiller at a time, drawn here; the initial sync and
// the growth curve pull the demo département of package demo.
//
// The workload is a département shaped like Mayenne: conseillers spread
// over its communes, the structures where they hold permanences, their
// beneficiaries (older people mostly) and two years of activities. It is
// generated here, deterministically from a seed, so that every scenario
// runs on the same rows whatever the machine. Rows respect the Coop's
// rules (a structure exactly for activities at a lieu d'activité, a
// commune for home visits) so that a server enforcing them accepts them.

// row is one generated row of a synced table.
type row struct {
	Table  string
	ID     string
	Values map[string]any
	// Author is the node id that wrote the row, and At when.
	Author string
	At     time.Time
}

type commune struct{ nom, cp, insee string }

var communes = []commune{
	{"Laval", "53000", "53130"}, {"Château-Gontier-sur-Mayenne", "53200", "53062"},
	{"Mayenne", "53100", "53147"}, {"Évron", "53600", "53097"}, {"Ernée", "53500", "53096"},
	{"Craon", "53400", "53084"}, {"Villaines-la-Juhel", "53700", "53271"}, {"Gorron", "53120", "53107"},
	{"Meslay-du-Maine", "53170", "53152"}, {"Lassay-les-Châteaux", "53110", "53127"},
	{"Saint-Berthevin", "53940", "53201"}, {"Bonchamp-lès-Laval", "53960", "53034"},
	{"Changé", "53810", "53054"},
}

var (
	prenoms     = []string{"Jeanne", "Marie", "Michel", "Bernard", "Monique", "Gérard", "Yvette", "Louis", "Odile", "André", "Lucienne", "Paul", "Nadia", "Karim", "Léa", "Hugo"}
	noms        = []string{"Martin", "Bernard", "Leroy", "Moreau", "Gautier", "Chevalier", "Lefèvre", "Roussel", "Pichon", "Guérin", "Hamon", "Lemaître", "Barbier", "Renaud"}
	rues        = []string{"rue de la Paix", "avenue Robert Buron", "place du Marché", "rue Nationale", "chemin des Prés", "rue du Général de Gaulle", "allée des Tilleuls"}
	autonomies  = []string{"entierement_accompagne", "partiellement_autonome", "autonome"}
	genres      = []string{"masculin", "feminin", "non_communique"}
	statuts     = []string{"retraite", "retraite", "retraite", "sans_emploi", "en_emploi", "scolarise", "non_communique"}
	materiels   = []string{"ordinateur", "telephone", "telephone", "tablette", "aucun"}
	themesNum   = []string{"email", "navigation_sur_internet", "securite_numerique", "prendre_en_main_du_materiel", "sante", "banque_et_achats_en_ligne", "gere_ses_contenus_numeriques"}
	themesAdmin = []string{"papiers_elections_citoyennete", "argent_impots", "social_sante", "logement", "travail_formation", "transports_mobilite"}
	fragments   = []string{
		"A besoin d'aide pour", "Reprendre la semaine prochaine :", "Demande réglée :", "Orientée vers France Services pour",
		"Première connexion à", "Mot de passe oublié pour", "Scanner le justificatif pour", "Prendre rendez-vous en ligne sur",
	}
	objets = []string{"ameli.fr", "la déclaration d'impôts", "la CAF", "France Travail", "ANTS (carte grise)", "sa messagerie", "Doctolib", "l'espace retraite", "le chèque énergie"}
)

// structureNames are the kinds of places where conseillers hold
// permanences in a rural département.
var structureNames = []string{"France Services", "Médiathèque", "Centre social", "Mairie", "PANDA (tricycle itinérant)"}

// dataset is a generated département.
type dataset struct {
	// Conseillers are the médiateurs' user ids (what mediateur_id holds);
	// Nodes are the node ids of their tablets, in the same order.
	Conseillers   []string
	Nodes         []string
	Structures    []row
	Beneficiaires []row
	Activites     []row
	// Accompagnements link individual activities to beneficiaries.
	Accompagnements []row
}

func (d *dataset) rows() []row {
	out := make([]row, 0, len(d.Structures)+len(d.Beneficiaires)+len(d.Activites)+len(d.Accompagnements))
	out = append(out, d.Structures...)
	out = append(out, d.Beneficiaires...)
	out = append(out, d.Activites...)
	return append(out, d.Accompagnements...)
}

// gen draws deterministic values.
type gen struct {
	rng *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{rng: rand.New(rand.NewPCG(seed, 0x5e1a15))} }

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// uuidAt makes a UUIDv7 for time t from the generator's bits, so that
// keys sort by creation time like real ones and runs are repeatable.
func (g *gen) uuidAt(t time.Time) string { return demo.UUIDv7At(g.rng, t) }

// generate builds a département with the given number of activities, done
// by the given conseillers (user ids), with one beneficiary per three
// activities and one structure per two conseillers.
func generate(seed uint64, activities int, end time.Time, conseillers []string) *dataset {
	g := newGen(seed)
	d := &dataset{Conseillers: conseillers}
	start := end.AddDate(-2, 0, 0)
	nc := len(conseillers)
	for range nc {
		d.Nodes = append(d.Nodes, g.uuidAt(start))
	}
	ns := max(2, nc/2)
	for i := range ns {
		c := communes[i%len(communes)]
		kind := structureNames[i%len(structureNames)]
		v := map[string]any{
			"nom": kind + " " + c.nom, "adresse": fmt.Sprintf("%d %s", 1+g.rng.IntN(60), g.pick(rues)),
			"commune": c.nom, "code_postal": c.cp, "code_insee": c.insee,
			"siret":    fmt.Sprintf("%014d", g.rng.Int64N(1e14)),
			"latitude": 47.8 + g.rng.Float64()*0.7, "longitude": -1.2 + g.rng.Float64()*0.9,
			"itinerance": "fixe",
		}
		if kind == structureNames[4] {
			v["itinerance"] = "itinerant"
		}
		d.Structures = append(d.Structures, row{Table: "structure", ID: g.uuidAt(start), Values: v, Author: d.Nodes[i%nc], At: start})
	}
	nb := max(1, activities/3)
	span := end.Sub(start)
	for range nb {
		at := start.Add(time.Duration(g.rng.Int64N(int64(span))))
		k := g.rng.IntN(nc)
		d.Beneficiaires = append(d.Beneficiaires, g.beneficiaire(at, d.Conseillers[k], d.Nodes[k]))
	}
	// Each conseiller follows their own beneficiaries; an individual
	// activity is linked to one of them by an accompagnement row.
	mine := make([][]string, nc)
	for _, b := range d.Beneficiaires {
		for k, c := range d.Conseillers {
			if b.Values["mediateur_id"] == c {
				mine[k] = append(mine[k], b.ID)
			}
		}
	}
	for i := range activities {
		// Divide first: the span in nanoseconds times i overflows int64.
		at := start.Add(span / time.Duration(activities) * time.Duration(i))
		k := g.rng.IntN(nc)
		a := g.activite(at, d.Conseillers[k], d.Nodes[k], d.Structures)
		d.Activites = append(d.Activites, a)
		if a.Values["type"] == "individuel" && len(mine[k]) > 0 {
			d.Accompagnements = append(d.Accompagnements, row{Table: "accompagnement", ID: g.uuidAt(at),
				Values: map[string]any{"mediateur_id": d.Conseillers[k], "activite_id": a.ID,
					"beneficiaire_id": mine[k][g.rng.IntN(len(mine[k]))]},
				Author: d.Nodes[k], At: at})
		}
	}
	return d
}

func (g *gen) beneficiaire(at time.Time, mediateur, node string) row {
	c := communes[g.rng.IntN(len(communes))]
	// Seniors are most of the public of a rural département.
	year := 1935 + g.rng.IntN(40)
	if g.rng.IntN(4) == 0 {
		year = 1975 + g.rng.IntN(40)
	}
	v := map[string]any{
		"mediateur_id": mediateur, "anonyme": int64(0), "annee_naissance": int64(year),
		"commune": c.nom, "commune_code_postal": c.cp, "commune_code_insee": c.insee,
		"genre": g.pick(genres), "tranche_age": domain.TrancheAgeOf(year, at.Year()), "statut_social": g.pick(statuts),
	}
	if g.rng.IntN(3) == 0 {
		v["anonyme"] = int64(1)
	} else {
		v["prenom"], v["nom"] = g.pick(prenoms), g.pick(noms)
		if g.rng.IntN(2) == 0 {
			v["telephone"] = fmt.Sprintf("02 43 %02d %02d %02d", g.rng.IntN(100), g.rng.IntN(100), g.rng.IntN(100))
		}
	}
	return row{Table: "beneficiaire", ID: g.uuidAt(at), Values: v, Author: node, At: at}
}

// activite draws one activity of mediateur (written on node) dated at;
// structures are where it may take place.
func (g *gen) activite(at time.Time, mediateur, node string, structures []row) row {
	v := map[string]any{
		"mediateur_id": mediateur, "date": at.Format("2006-01-02"),
		"autonomie": g.pick(autonomies),
	}
	typ := "individuel"
	dur := []int64{15, 30, 30, 45, 60, 60, 90}[g.rng.IntN(7)]
	if g.rng.IntN(10) == 0 {
		typ, dur = "collectif", []int64{90, 120, 120, 180}[g.rng.IntN(4)]
	}
	v["type"], v["duree"] = typ, dur
	switch p := g.rng.IntN(10); {
	case p < 6 || typ == "collectif":
		s := structures[g.rng.IntN(len(structures))]
		v["type_lieu"], v["structure_id"] = "lieu_activite", s.ID
	case p < 9:
		c := communes[g.rng.IntN(len(communes))]
		v["type_lieu"], v["commune"], v["code_insee"] = "domicile", c.nom, c.insee
	default:
		v["type_lieu"] = "a_distance"
	}
	if g.rng.IntN(3) == 0 {
		v["notes"] = g.pick(fragments) + " " + g.pick(objets) + "."
	}
	if c, ok := v["commune"].(string); ok {
		for _, k := range communes {
			if k.nom == c {
				v["code_postal"] = k.cp
			}
		}
	}
	v["materiel"] = `["` + g.pick(materiels) + `"]`
	// Administrative help is half of the work in a rural permanence.
	if g.rng.IntN(2) == 0 {
		v["thematiques"] = `["aide_aux_demarches_administratives","` + g.pick(themesAdmin) + `"]`
		if g.rng.IntN(4) == 0 {
			v["precisions_demarche"] = "Dossier " + g.pick(objets)
		}
	} else {
		v["thematiques"] = `["` + g.pick(themesNum) + `"]`
	}
	return row{Table: "activite", ID: g.uuidAt(at), Values: v, Author: node, At: at}
}

// variant returns the values of an activity rewritten for the given
// round, as a conseiller correcting it would: every column that can
// change while keeping the row valid and in its owner's scope changes
// from one round to the next (duration, date, autonomy, notes, the place).
func variant(r row, round int, structures []row) map[string]any {
	v := map[string]any{}
	for col, val := range r.Values {
		v[col] = val
	}
	v["duree"] = int64(15 * (1 + round%8))
	v["date"] = r.At.AddDate(0, 0, round).Format("2006-01-02")
	v["autonomie"] = autonomies[round%len(autonomies)]
	v["notes"] = fmt.Sprintf("%s %s (relu %d).", fragments[round%len(fragments)], objets[round%len(objets)], round)
	if _, ok := r.Values["structure_id"]; ok {
		v["structure_id"] = structures[round%len(structures)].ID
	}
	if _, ok := r.Values["commune"]; ok {
		c := communes[round%len(communes)]
		v["commune"], v["code_insee"] = c.nom, c.insee
	}
	return v
}

// changesOf turns rows into changes stamped by their authors, keeping
// only columns the schema has. Timestamps follow the rows' creation
// times, with the logical counter separating cells written together.
func changesOf(schema *syncproto.Schema, rows []row) []syncproto.Change {
	var out []syncproto.Change
	for _, r := range rows {
		t := schema.Tables[r.Table]
		if t == nil {
			continue
		}
		ts := syncproto.FromTime(r.At)
		for _, col := range t.ColumnNames() {
			val, ok := r.Values[col]
			if !ok {
				continue
			}
			out = append(out, syncproto.Change{Table: r.Table, PK: r.ID, Column: col, Value: val,
				Version: syncproto.Version{HLC: ts, Node: r.Author}})
		}
	}
	return out
}

// seed writes rows straight into a server database through the merge
// engine, as if their authors had pushed them long ago. It is setup, not
// measured: scenarios that measure ingest push through the server.
func seed(ctx context.Context, db *store.DB, rows []row) error {
	w := db.W
	schema, err := server.LoadSchema(ctx, db)
	if err != nil {
		return err
	}
	opt := server.OnStore(db, server.MergeOptions(schema, nil))
	changes := changesOf(schema, rows)
	const chunk = 20000
	for i := 0; i < len(changes); i += chunk {
		part := changes[i:min(i+chunk, len(changes))]
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if _, err := replica.Apply(ctx, tx, schema, part, opt); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("seed: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}
