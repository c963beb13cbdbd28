package demo

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/relais-numerique/relais/domain"
)

// Shapes of the data. The shares are plausible for a rural département
// with an older population; they are not statistics of the real one.
var (
	// tranche d'âge of new beneficiaries: more than half are 60 or over.
	ageWeights = map[string]float64{
		"moins_de_douze": 0.01, "douze_dix_huit": 0.03, "dix_huit_vingt_quatre": 0.05, "vingt_cinq_trente_neuf": 0.10,
		"quarante_cinquante_neuf": 0.18, "soixante_soixante_neuf": 0.22, "soixante_dix_plus": 0.33, "non_communique": 0.08,
	}
	// type de lieu of individual activities, by conseiller profile.
	lieuWeights = map[string][]float64{ // lieu_activite, domicile, a_distance, autre
		"permanence": {0.70, 0.14, 0.12, 0.04},
		"domicile":   {0.30, 0.58, 0.10, 0.02},
		"panda":      {0.72, 0.22, 0.00, 0.06},
	}
	lieux       = []string{"lieu_activite", "domicile", "a_distance", "autre"}
	durees      = []int{15, 30, 45, 60, 90, 120}
	dureeW      = []float64{0.07, 0.22, 0.22, 0.30, 0.13, 0.06}
	themesNum   = []string{"email", "navigation_sur_internet", "prendre_en_main_du_materiel", "securite_numerique", "sante", "banque_et_achats_en_ligne", "gere_ses_contenus_numeriques", "bureautique", "diagnostic_numerique", "reseaux_sociaux", "insertion_professionnelle", "scolarite_et_numerique", "parentalite", "entrepreneuriat", "creer_avec_le_numerique", "culture_numerique", "intelligence_artificielle"}
	themesNumW  = []float64{0.16, 0.14, 0.16, 0.08, 0.08, 0.06, 0.08, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01}
	themesAdm   = []string{"papiers_elections_citoyennete", "argent_impots", "social_sante", "travail_formation", "logement", "transports_mobilite", "famille_scolarite", "etrangers_europe", "justice", "loisirs_sports_culture", "associations"}
	themesAdmW  = []float64{0.20, 0.15, 0.20, 0.10, 0.12, 0.08, 0.07, 0.03, 0.02, 0.02, 0.01}
	materiels   = []string{"telephone", "ordinateur", "tablette", "aucun", "autre"}
	materielsW  = []float64{0.40, 0.28, 0.18, 0.09, 0.05}
	autonomies  = []string{"entierement_accompagne", "partiellement_autonome", "autonome"}
	autonomiesW = []float64{0.45, 0.40, 0.15}
	redirW      = []float64{0.22, 0.08, 0.25, 0.20, 0.08, 0.12, 0.05}
	coordTitles = []string{"Réunion du réseau des conseillers numériques", "Comité départemental de l'inclusion numérique",
		"Rencontre avec la CAF de la Mayenne", "Formation des conseillers : cybersécurité", "Forum seniors et numérique",
		"Point d'étape avec les France Services", "Atelier d'échange de pratiques", "Partenariat avec le Département"}
)

func (g *gen) values(enum string) []string {
	e, _ := domain.Lookup(enum)
	return e.Values()
}

// plan draws the staff and their places before any row is written.
func (g *gen) plan() {
	for range places {
		g.placeIDs = append(g.placeIDs, g.uuidAt(g.from.AddDate(0, -1, 0)))
	}
	n := 22
	if g.opt.Activities > DefaultActivities {
		n = int(math.Round(22 * float64(g.opt.Activities) / DefaultActivities))
	}
	panda, others := -1, []int{}
	for i, p := range places {
		if p.Itinerante {
			panda = i
		} else if p.Typologie == "France Services" || p.Typologie == "Mairie" {
			others = append(others, i)
		}
	}
	rural := []string{"Villaines-la-Juhel", "Gorron", "Craon"}
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		name := staff[i%len(staff)]
		seen[name]++
		p := &person{Name: name, Profile: "permanence", From: g.from, To: g.opt.Until}
		if seen[name] > 1 {
			p.Name = fmt.Sprintf("%s %d", name, seen[name])
		}
		p.Email = slug(p.Name) + "@" + DemoDomain
		p.ID = g.uuidAt(g.from.AddDate(0, -1, 0))
		p.Node = g.uuidAt(g.from.AddDate(0, -1, 0))
		switch {
		case i == 0:
			p.Profile = "panda"
			p.Places = []int{panda, placeIndex("Centre social de Laval, quartier Saint-Nicolas")}
		case i <= len(rural):
			p.Profile = "domicile"
			p.Places = []int{placeIndex("France Services de " + rural[i-1])}
		default:
			base := others[(i-len(rural)-1)%len(others)]
			p.Places = []int{base}
			// A second place in the same commune or the nearest town:
			// a médiathèque or centre social where workshops happen.
			for j, pl := range places {
				if j != base && !pl.Itinerante && pl.Typologie != "France Services" && pl.Typologie != "Mairie" &&
					distance(pl.Commune, places[base].Commune) < 20 && g.chance(0.6) {
					p.Places = append(p.Places, j)
					break
				}
			}
		}
		// Two joined a year in; one left five months before the end.
		if i%11 == 5 {
			p.From = g.from.AddDate(1, 0, 0)
		}
		if i == n-3 && n > 3 {
			p.To = g.opt.Until.AddDate(0, -5, 0)
		}
		p.Workshops = map[string]float64{"permanence": 0.08, "domicile": 0.04, "panda": 0.06}[p.Profile]
		for _, pl := range p.Places[1:] {
			if t := places[pl].Typologie; t == "Médiathèque" || t == "Centre social" {
				p.Workshops = 0.2
			}
		}
		home := places[p.Places[0]].Commune
		for ci, c := range communes {
			d := distance(home, c.Nom)
			if d < 25 {
				p.Catchment = append(p.Catchment, ci)
				p.Weights = append(p.Weights, float64(c.Population)/(1+d/4))
			}
		}
		g.staff = append(g.staff, p)
	}
	g.coordinator = &person{Name: coordinatorName, Email: slug(coordinatorName) + "@" + DemoDomain,
		ID: g.uuidAt(g.from.AddDate(0, -2, 0)), Node: g.uuidAt(g.from.AddDate(0, -2, 0)), From: g.from, To: g.opt.Until}
	g.admin = &person{Name: "Administration Relais", Email: "admin@" + DemoDomain, ID: g.uuidAt(g.from.AddDate(0, -2, 0))}
	g.sum.Conseillers = n
	g.sum.From, g.sum.Until = g.from, g.opt.Until
}

func placeIndex(nom string) int {
	for i, p := range places {
		if p.Nom == nom {
			return i
		}
	}
	panic("demo: no place " + nom)
}

// distance in kilometres between two communes (equirectangular; plenty
// for a département).
func distance(a, b string) float64 {
	ca, cb := communeByName(a), communeByName(b)
	x := (cb.Lon - ca.Lon) * math.Cos((ca.Lat+cb.Lat)/2*math.Pi/180)
	y := cb.Lat - ca.Lat
	return math.Sqrt(x*x+y*y) * 111.2
}

// slug makes an e-mail local part from a name: lower case, no accents.
func slug(name string) string {
	r := strings.NewReplacer("é", "e", "è", "e", "ë", "e", "ê", "e", "ï", "i", "î", "i", "ç", "c", "à", "a", "â", "a", "ô", "o", "û", "u", "ù", "u",
		"É", "e", " ", ".", "'", "")
	return r.Replace(strings.ToLower(name))
}

// dayWeight is how busy a day is: no Sundays, few Saturdays, quiet
// Augusts and Christmas weeks, busy tax-return springs.
func dayWeight(d time.Time, p *person) float64 {
	w := 1.0
	switch d.Weekday() {
	case time.Sunday:
		return 0
	case time.Saturday:
		if p.Workshops < 0.2 {
			return 0
		}
		w = 0.25
	}
	switch {
	case d.Month() == time.August:
		w *= 0.35
	case d.Month() == time.December && d.Day() > 20:
		w *= 0.3
	case d.Month() == time.April || d.Month() == time.May:
		w *= 1.25
	}
	return w
}

func (g *gen) run() error {
	for i, p := range places {
		c := communeByName(p.Commune)
		it := "fixe"
		if p.Itinerante {
			it = "itinerant"
		}
		err := g.emit("structure", g.placeIDs[i], g.from.AddDate(0, -1, 0), g.coordinator.Node, map[string]any{
			"nom": p.Nom, "typologie": p.Typologie, "adresse": p.Adresse, "commune": c.Nom, "code_postal": c.CodePostal,
			"code_insee": c.CodeInsee, "latitude": c.Lat, "longitude": c.Lon, "itinerance": it,
		})
		if err != nil {
			return err
		}
		g.sum.Structures++
	}
	for _, p := range g.staff {
		var fin any
		if p.To.Before(g.opt.Until) {
			fin = p.To.Format(time.DateOnly)
		}
		for _, pl := range p.Places {
			if err := g.emit("mediateur_en_activite", g.uuidAt(p.From), p.From, g.coordinator.Node, map[string]any{
				"mediateur_id": p.ID, "structure_id": g.placeIDs[pl], "debut": p.From.Format(time.DateOnly), "fin": fin,
			}); err != nil {
				return err
			}
		}
		if err := g.emit("coordination", g.uuidAt(p.From), p.From, g.coordinator.Node, map[string]any{
			"coordinateur_id": g.coordinator.ID, "mediateur_id": p.ID, "debut": p.From.Format(time.DateOnly), "fin": fin,
		}); err != nil {
			return err
		}
	}

	total := 0.0
	for _, p := range g.staff {
		for d := p.From; d.Before(p.To); d = d.AddDate(0, 0, 1) {
			total += dayWeight(d, p)
		}
	}
	lambda := float64(g.opt.Activities) / total
	for i, p := range g.staff {
		if g.opt.Progress != nil {
			g.opt.Progress(i, len(g.staff), g.sum.Activites)
		}
		for d := p.From; d.Before(p.To); d = d.AddDate(0, 0, 1) {
			w := dayWeight(d, p)
			if w == 0 {
				continue
			}
			for k := g.poisson(lambda * w); k > 0; k-- {
				if err := g.activity(p, d); err != nil {
					return err
				}
			}
		}
	}
	return g.coordination()
}

// slot draws a start time on day d, in opening hours.
func (g *gen) slot(d time.Time) time.Time {
	hours := []int{9, 10, 11, 14, 15, 16}
	return d.Add(time.Duration(hours[g.rng.IntN(len(hours))])*time.Hour + time.Duration(15*g.rng.IntN(4))*time.Minute)
}

func jsonList(values []string) string {
	return `["` + strings.Join(values, `","`) + `"]`
}

// drawDistinct draws k distinct values with weights.
func (g *gen) drawDistinct(values []string, w []float64, k int) []string {
	var out []string
	for tries := 0; len(out) < k && tries < 20; tries++ {
		v := values[g.weighted(w)]
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

func (g *gen) activity(p *person, d time.Time) error {
	if g.chance(p.Workshops) {
		return g.workshop(p, d)
	}
	start := g.slot(d)
	b, err := g.beneficiary(p, start)
	if err != nil {
		return err
	}
	lieu := lieux[g.weighted(lieuWeights[p.Profile])]
	duree := durees[g.weighted(dureeW)]
	if lieu == "domicile" && duree < 45 {
		duree = 60 // a home visit takes travelling in, and time
	}
	recorded := start.Add(time.Duration(duree+5+g.rng.IntN(120)) * time.Minute)
	id := g.uuidAt(recorded)
	v := map[string]any{
		"mediateur_id": p.ID, "type": "individuel", "date": d.Format(time.DateOnly), "duree": duree, "type_lieu": lieu,
		"autonomie": autonomies[g.weighted(autonomiesW)], "oriente_vers_structure": 0,
	}
	switch lieu {
	case "lieu_activite":
		v["structure_id"] = g.placeIDs[p.Places[g.rng.IntN(len(p.Places))]]
	case "domicile":
		c := communes[b.Commune]
		v["commune"], v["code_postal"], v["code_insee"] = c.Nom, c.CodePostal, c.CodeInsee
		rdv := g.uuidAt(start.Add(-72 * time.Hour))
		var adresse any
		if b.Adresse != "" {
			adresse = b.Adresse + ", " + c.CodePostal + " " + c.Nom
		}
		if err := g.emit("rendez_vous", rdv, start.Add(-72*time.Hour), p.Node, map[string]any{
			"mediateur_id": p.ID, "beneficiaire_id": b.ID, "debut": start.Format(time.RFC3339),
			"fin": start.Add(time.Duration(duree) * time.Minute).Format(time.RFC3339), "adresse": adresse,
			"commune": c.Nom, "code_insee": c.CodeInsee, "collectif": 0, "statut": "seen",
		}); err != nil {
			return err
		}
		v["rendez_vous_id"] = rdv
		g.sum.RendezVous++
		g.sum.HomeVisits++
	case "a_distance":
		c := communeByName(places[p.Places[0]].Commune) // the employer's commune, as the Coop records it
		v["commune"], v["code_postal"], v["code_insee"] = c.Nom, c.CodePostal, c.CodeInsee
	case "autre":
		c := communes[p.Catchment[g.weighted(p.Weights)]]
		v["commune"], v["code_postal"], v["code_insee"] = c.Nom, c.CodePostal, c.CodeInsee
	}
	// Themes: administrative help in four cases out of ten, more in the
	// tax-return season; digital themes otherwise.
	adminShare := 0.42
	if m := d.Month(); m >= time.April && m <= time.June {
		adminShare = 0.5
	}
	if g.chance(adminShare) {
		w := append([]float64(nil), themesAdmW...)
		if m := d.Month(); m >= time.April && m <= time.June {
			w[1] *= 3 // argent_impots
		}
		themes := append([]string{domain.AideAuxDemarches}, g.drawDistinct(themesAdm, w, 1+g.rng.IntN(2))...)
		v["thematiques"] = jsonList(themes)
		if g.chance(0.5) {
			v["precisions_demarche"] = g.pick(precisions)
		}
	} else {
		v["thematiques"] = jsonList(g.drawDistinct(themesNum, themesNumW, 1+g.weighted([]float64{0.55, 0.35, 0.10})))
	}
	if m := materiels[g.weighted(materielsW)]; m == "aucun" {
		v["materiel"] = `["aucun"]`
	} else if g.chance(0.2) {
		v["materiel"] = jsonList(g.drawDistinct(materiels[:3], materielsW[:3], 2))
	} else {
		v["materiel"] = jsonList([]string{m})
	}
	if g.chance(0.08) {
		v["oriente_vers_structure"] = 1
		v["structure_de_redirection"] = g.values(domain.StructureDeRedirection)[g.weighted(redirW)]
	}
	if g.chance(0.05) {
		v["notes"] = g.pick(notesActivite)
	}
	if err := g.emit("activite", id, recorded, p.Node, v); err != nil {
		return err
	}
	g.sum.Activites++
	if lieu != "domicile" && g.chance(0.04) {
		// An appointment that did not happen.
		st := []string{"noshow", "excused", "revoked"}[g.weighted([]float64{0.5, 0.35, 0.15})]
		when := start.AddDate(0, 0, 1+g.rng.IntN(10))
		if err := g.emit("rendez_vous", g.uuidAt(when.Add(-72*time.Hour)), when.Add(-72*time.Hour), p.Node, map[string]any{
			"mediateur_id": p.ID, "beneficiaire_id": b.ID, "debut": when.Format(time.RFC3339),
			"fin": when.Add(45 * time.Minute).Format(time.RFC3339), "collectif": 0, "statut": st,
		}); err != nil {
			return err
		}
		g.sum.RendezVous++
	}
	return g.accompany(p, b, id, recorded)
}

func (g *gen) accompany(p *person, b *benef, activite string, at time.Time) error {
	first := 0
	if b.Accompagn == 0 {
		first = 1
	}
	b.Accompagn++
	g.sum.Accompagnements++
	return g.emit("accompagnement", g.uuidAt(at), at, p.Node, map[string]any{
		"mediateur_id": p.ID, "activite_id": activite, "beneficiaire_id": b.ID, "premier_accompagnement": first,
	})
}

// beneficiary returns someone the conseiller already follows, mostly a
// recent one, or a new beneficiary about one time in four.
func (g *gen) beneficiary(p *person, at time.Time) (*benef, error) {
	if len(p.pool) > 0 && !g.chance(0.27) {
		back := int(g.rng.ExpFloat64() * 60)
		return p.pool[max(0, len(p.pool)-1-back)], nil
	}
	ci := p.Catchment[g.weighted(p.Weights)]
	c := communes[ci]
	b := &benef{ID: g.uuidAt(at), Commune: ci, Anonyme: g.chance(0.25)}
	genre := []string{"feminin", "masculin", "non_communique"}[g.weighted([]float64{0.58, 0.38, 0.04})]
	ages := g.values(domain.TrancheAge)
	aw := make([]float64, len(ages))
	for i, a := range ages {
		aw[i] = ageWeights[a]
	}
	tranche := ages[g.weighted(aw)]
	v := map[string]any{
		"mediateur_id": p.ID, "anonyme": 0, "genre": genre, "tranche_age": tranche, "statut_social": g.statut(tranche),
		"commune": c.Nom, "commune_code_postal": c.CodePostal, "commune_code_insee": c.CodeInsee,
	}
	if b.Anonyme {
		v["anonyme"] = 1
	} else {
		first := prenomsF
		if genre == "masculin" || (genre == "non_communique" && g.chance(0.5)) {
			first = prenomsM
		}
		prenom, nom := g.pick(first), g.pick(noms)
		v["prenom"], v["nom"] = prenom, nom
		if tranche != "non_communique" && g.chance(0.65) {
			year := g.birthYear(tranche, at.Year())
			v["annee_naissance"] = year
			v["tranche_age"] = domain.TrancheAgeOf(year, at.Year())
		}
		if g.chance(0.85) {
			v["telephone"] = fmt.Sprintf("0%d %02d %02d %02d %02d", []int{2, 6, 7}[g.weighted([]float64{0.45, 0.45, 0.1})],
				g.rng.IntN(100), g.rng.IntN(100), g.rng.IntN(100), g.rng.IntN(100))
			v["pas_de_telephone"] = 0
		} else {
			v["pas_de_telephone"] = 1
		}
		if g.chance(0.25) {
			v["email"] = slug(prenom+"."+nom) + fmt.Sprintf("%d@exemple.fr", g.rng.IntN(100))
		}
		if g.chance(0.7) {
			b.Adresse = fmt.Sprintf("%d %s", 1+g.rng.IntN(60), g.pick(rues))
			v["adresse"] = b.Adresse
		}
		if g.chance(0.06) {
			v["notes"] = g.pick(notesBeneficiaire)
		}
	}
	if err := g.emit("beneficiaire", b.ID, at, p.Node, v); err != nil {
		return nil, err
	}
	g.sum.Beneficiaires++
	p.pool = append(p.pool, b)
	return b, nil
}

func (g *gen) statut(tranche string) string {
	switch tranche {
	case "moins_de_douze", "douze_dix_huit":
		return "scolarise"
	case "dix_huit_vingt_quatre":
		return []string{"scolarise", "en_emploi", "sans_emploi"}[g.weighted([]float64{0.4, 0.3, 0.3})]
	case "vingt_cinq_trente_neuf", "quarante_cinquante_neuf":
		return []string{"en_emploi", "sans_emploi", "non_communique"}[g.weighted([]float64{0.45, 0.45, 0.1})]
	case "soixante_soixante_neuf", "soixante_dix_plus":
		return []string{"retraite", "en_emploi", "non_communique"}[g.weighted([]float64{0.92, 0.03, 0.05})]
	}
	return g.values(domain.StatutSocial)[g.rng.IntN(5)]
}

// ageBounds are the ages each bracket covers (70 and over: up to 94).
var ageBounds = map[string][2]int{
	"moins_de_douze": {4, 11}, "douze_dix_huit": {12, 17}, "dix_huit_vingt_quatre": {18, 24}, "vingt_cinq_trente_neuf": {25, 39},
	"quarante_cinquante_neuf": {40, 59}, "soixante_soixante_neuf": {60, 69}, "soixante_dix_plus": {70, 94},
}

// birthYear draws a birth year that falls in the bracket in year.
func (g *gen) birthYear(tranche string, year int) int {
	b := ageBounds[tranche]
	return year - (b[0] + g.rng.IntN(b[1]-b[0]+1))
}

func (g *gen) workshop(p *person, d time.Time) error {
	start := g.slot(d)
	a := ateliers[g.rng.IntN(len(ateliers))]
	duree := []int{60, 90, 120}[g.weighted([]float64{0.15, 0.5, 0.35})]
	recorded := start.Add(time.Duration(duree+10+g.rng.IntN(180)) * time.Minute)
	id := g.uuidAt(recorded)
	place := p.Places[len(p.Places)-1]
	v := map[string]any{
		"mediateur_id": p.ID, "type": "collectif", "date": d.Format(time.DateOnly), "duree": duree,
		"titre_atelier": a.Titre, "niveau": g.values(domain.Niveau)[g.weighted([]float64{0.6, 0.3, 0.1})],
		"thematiques": jsonList(a.Thematiques), "materiel": jsonList([]string{[]string{"tablette", "ordinateur", "telephone"}[g.rng.IntN(3)]}),
	}
	if g.chance(0.93) {
		v["type_lieu"], v["structure_id"] = "lieu_activite", g.placeIDs[place]
	} else {
		c := communes[p.Catchment[g.weighted(p.Weights)]] // a village hall
		v["type_lieu"], v["commune"], v["code_postal"], v["code_insee"] = "autre", c.Nom, c.CodePostal, c.CodeInsee
	}
	if err := g.emit("activite", id, recorded, p.Node, v); err != nil {
		return err
	}
	g.sum.Activites++
	// A few participants already followed by name, the others counted.
	named := map[*benef]bool{}
	for k := g.rng.IntN(4); k > 0 && len(p.pool) > 0; k-- {
		named[p.pool[g.rng.IntN(len(p.pool))]] = true
	}
	for _, b := range p.pool { // iterate the pool, not the map: deterministic order
		if named[b] {
			if err := g.accompany(p, b, id, recorded); err != nil {
				return err
			}
		}
	}
	total := 2 + g.rng.IntN(8)
	counts := map[string]any{"mediateur_id": p.ID, "activite_id": id, "total": total, "deja_accompagne": g.rng.IntN(total/2 + 1)}
	spread := func(prefix string, values []string, w []float64) {
		n := make([]int, len(values))
		for i := 0; i < total; i++ {
			n[g.weighted(w)]++
		}
		for i, v := range values {
			if n[i] > 0 {
				counts[prefix+v] = n[i]
			}
		}
	}
	spread("genre_", []string{"feminin", "masculin", "non_communique"}, []float64{0.6, 0.37, 0.03})
	ages := g.values(domain.TrancheAge)
	aw := make([]float64, len(ages))
	for i, a := range ages {
		aw[i] = ageWeights[a]
	}
	spread("tranche_age_", ages, aw)
	spread("statut_social_", g.values(domain.StatutSocial), []float64{0.04, 0.12, 0.12, 0.64, 0.08})
	g.sum.ParticipantsAnonymes++
	return g.emit("participants_anonymes", g.uuidAt(recorded), recorded, p.Node, counts)
}

// coordination: the coordinator's own activities, about two a week.
func (g *gen) coordination() error {
	c := g.coordinator
	for d := c.From; d.Before(c.To); d = d.AddDate(0, 0, 7) {
		for k := g.poisson(2); k > 0; k-- {
			day := d.AddDate(0, 0, g.rng.IntN(5))
			if !day.Before(c.To) {
				continue
			}
			at := g.slot(day).Add(4 * time.Hour)
			if err := g.emit("activite_coordination", g.uuidAt(at), at, c.Node, map[string]any{
				"mediateur_id": c.ID, "type": g.values(domain.TypeActiviteCoordination)[g.weighted([]float64{0.5, 0.2, 0.3})],
				"date": day.Format(time.DateOnly), "duree": 60 + 30*g.rng.IntN(6), "intitule": g.pick(coordTitles),
				"echelon_territorial": g.values(domain.EchelonTerritorial)[g.weighted([]float64{0.2, 0.35, 0.4, 0.05, 0})],
			}); err != nil {
				return err
			}
			g.sum.ActivitesCoordination++
		}
	}
	return nil
}
