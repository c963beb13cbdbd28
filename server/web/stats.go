package web

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/domain"
	syncscope "github.com/relais-numerique/relais/server/scope"
)

// StatsFilter narrows activities: a period (days, inclusive), one
// conseiller, one place type, one structure. Empty fields do not filter.
type StatsFilter struct {
	From      string `json:"du"`
	To        string `json:"au"`
	Mediateur string `json:"conseiller,omitempty"`
	TypeLieu  string `json:"lieu,omitempty"`
	Structure string `json:"structure,omitempty"`
	Type      string `json:"type,omitempty"`
	Theme     string `json:"thematique,omitempty"`
}

// filterFrom reads the filter from a query string, defaulting to the last
// twelve months (the current month and the eleven before it).
func (h *Handler) filterFrom(c *fiber.Ctx) (StatsFilter, error) {
	now := h.d.Now().In(h.loc)
	f := StatsFilter{
		From:      strings.TrimSpace(c.Query("du")),
		To:        strings.TrimSpace(c.Query("au")),
		Mediateur: c.Query("conseiller"),
		TypeLieu:  c.Query("lieu"),
		Structure: c.Query("structure"),
		Type:      c.Query("type"),
		Theme:     c.Query("thematique"),
	}
	if f.From == "" {
		f.From = time.Date(now.Year(), now.Month()-11, 1, 0, 0, 0, 0, h.loc).Format(time.DateOnly)
	}
	if f.To == "" {
		f.To = now.Format(time.DateOnly)
	}
	from, err1 := time.Parse(time.DateOnly, f.From)
	to, err2 := time.Parse(time.DateOnly, f.To)
	if err1 != nil || err2 != nil {
		return f, badRequest("Les dates de la période s'écrivent AAAA-MM-JJ, par exemple 2026-01-31.")
	}
	if to.Before(from) {
		return f, badRequest("La fin de la période précède son début.")
	}
	return f, nil
}

// Activity is one activity as statistics and exports read it.
type Activity struct {
	ID          string   `json:"id"`
	OwnerID     string   `json:"mediateur_id"`
	Owner       string   `json:"mediateur"`
	Type        string   `json:"type"`
	Date        string   `json:"date"`
	Duree       *int64   `json:"duree"`
	TypeLieu    string   `json:"type_lieu"`
	StructureID string   `json:"structure_id,omitempty"`
	Structure   string   `json:"structure,omitempty"`
	Itinerant   bool     `json:"itinerant"`
	Commune     string   `json:"commune,omitempty"`
	CodeInsee   string   `json:"code_insee,omitempty"`
	Thematiques []string `json:"thematiques"`
	Materiel    []string `json:"materiel"`
	Autonomie   string   `json:"autonomie,omitempty"`
	// Named beneficiaries and anonymous workshop participants.
	Beneficiaires int `json:"beneficiaires"`
	Anonymes      int `json:"participants_anonymes"`
	// Notes and BeneficiaryNames are filled only for the viewer's own
	// activities: team views never carry personal data.
	Notes            string   `json:"notes,omitempty"`
	BeneficiaryNames []string `json:"beneficiaires_noms,omitempty"`
}

// covers reports whether the viewer may count owner's activity dated
// date: a coordinator only inside the coordination's dates.
func (s scope) covers(owner, date string) bool {
	if s.all {
		return true
	}
	for _, m := range s.members {
		if m.UserID == owner && (syncscope.Period{From: m.From, To: m.To}).Holds(date) {
			return true
		}
	}
	return false
}

// col names a column in a query if the schema has it, NULL otherwise, so
// the dashboard keeps working on a database a migration behind.
func (h *Handler) col(alias, table, column string) string {
	if _, ok := h.d.Schema().ColumnType(table, column); ok {
		return alias + "." + column
	}
	return "NULL"
}

func (h *Handler) hasTable(t string) bool {
	_, ok := h.d.Schema().Tables[t]
	return ok
}

// activities reads the activities the viewer may see that match f, with
// their beneficiaries counted (and gathered in agg when not nil).
func (h *Handler) activities(ctx context.Context, v Viewer, f StatsFilter, agg *beneficiaryAgg) ([]Activity, error) {
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return nil, err
	}
	names, err := h.userNames(ctx)
	if err != nil {
		return nil, err
	}
	where, args := activityWhere(sc, f)
	q := `SELECT a.id, COALESCE(a.mediateur_id, ''), COALESCE(a.type, ''), COALESCE(a.date, ''), a.duree,
		COALESCE(a.type_lieu, ''), COALESCE(a.structure_id, ''), COALESCE(s.nom, ''), COALESCE(` + h.col("s", "structure", "itinerance") + `, ''),
		COALESCE(NULLIF(a.commune, ''), s.commune, ''), COALESCE(NULLIF(a.code_insee, ''), s.code_insee, ''),
		COALESCE(` + h.col("a", "activite", "thematiques") + `, ''), COALESCE(` + h.col("a", "activite", "materiel") + `, ''),
		COALESCE(a.autonomie, ''), COALESCE(a.notes, '')
		FROM activite a LEFT JOIN structure s ON s.id = a.structure_id
		WHERE ` + where + ` ORDER BY a.date, a.id`
	rows, err := h.d.DB.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read activities: %w", err)
	}
	defer rows.Close()
	var out []Activity
	index := map[string]int{}
	for rows.Next() {
		var a Activity
		var duree sql.NullInt64
		var itin, themes, mat, notes string
		if err := rows.Scan(&a.ID, &a.OwnerID, &a.Type, &a.Date, &duree, &a.TypeLieu, &a.StructureID, &a.Structure,
			&itin, &a.Commune, &a.CodeInsee, &themes, &mat, &a.Autonomie, &notes); err != nil {
			return nil, fmt.Errorf("read activities: %w", err)
		}
		if !sc.covers(a.OwnerID, a.Date) {
			continue
		}
		a.Owner = names[a.OwnerID]
		a.Duree = ptr(duree)
		a.Itinerant = slices.Contains(splitList(itin), "itinerant")
		a.Thematiques, a.Materiel = splitList(themes), splitList(mat)
		if a.OwnerID == v.UserID {
			a.Notes = notes
		}
		index[a.ID] = len(out)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read activities: %w", err)
	}
	if err := h.countBeneficiaries(ctx, v, where, args, out, index, agg); err != nil {
		return nil, err
	}
	return out, nil
}

// activityWhere is the condition selecting the activities (alias a) of
// filter f among the people of scope sc, with its arguments. It narrows
// by owner and by date range so SQLite can use the (mediateur_id, date)
// index; the coordination windows are then applied row by row (covers).
// Only placeholders are spliced into the SQL, one per team member.
func activityWhere(sc scope, f StatsFilter) (string, []any) {
	// Dates may carry a time ("2026-05-10T09:30"); comparing with the day
	// after the period's end keeps the whole last day.
	to, _ := time.Parse(time.DateOnly, f.To) // checked by filterFrom
	conds := []string{"a.date >= ?", "a.date < ?"}
	args := []any{f.From, to.AddDate(0, 0, 1).Format(time.DateOnly)}
	if !sc.all {
		var ids []any
		for _, m := range sc.members {
			if !slices.Contains(ids, any(m.UserID)) {
				ids = append(ids, m.UserID)
			}
		}
		conds = append(conds, "a.mediateur_id IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+")")
		args = append(args, ids...)
	}
	// Place types are those of the charts (placeKey): an itinerant stop
	// is a lieu_activite at a structure that moves, told apart from the
	// fixed permanences, and "non_renseigne" is an activity without one.
	const itinerantStop = `EXISTS (SELECT 1 FROM structure s2 WHERE s2.id = a.structure_id AND s2.itinerance LIKE '%itinerant%')`
	switch f.TypeLieu {
	case "":
	case "itinerant":
		conds = append(conds, "a.type_lieu = 'lieu_activite'", itinerantStop)
	case "lieu_activite":
		conds = append(conds, "a.type_lieu = 'lieu_activite'", "NOT "+itinerantStop)
	case "non_renseigne":
		conds = append(conds, "COALESCE(a.type_lieu, '') = ''")
	default:
		conds = append(conds, "a.type_lieu = ?")
		args = append(args, f.TypeLieu)
	}
	for _, c := range []struct{ col, val string }{{"a.mediateur_id", f.Mediateur},
		{"a.structure_id", f.Structure}, {"a.type", f.Type}} {
		if c.val != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if f.Theme != "" {
		// thematiques is one cell holding a JSON array of values.
		conds = append(conds, "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(a.thematiques) THEN a.thematiques ELSE '[]' END) WHERE value = ?)")
		args = append(args, f.Theme)
	}
	return strings.Join(conds, " AND "), args
}

// beneficiary is one named beneficiary as statistics count them.
type beneficiary struct {
	genre, trancheAge, statutSocial string
}

// countBeneficiaries fills each activity's beneficiary counts (and, for
// the viewer's own activities, names) and, when agg is not nil, collects
// the distinct beneficiaries and anonymous participants met.
// The activities are selected again by the same condition (where, args)
// rather than by a list of ids; rows of activities that acts does not hold
// (outside a coordination's dates) are skipped through index.
func (h *Handler) countBeneficiaries(ctx context.Context, v Viewer, where string, args []any, acts []Activity, index map[string]int, agg *beneficiaryAgg) error {
	if len(acts) == 0 || !h.hasTable("accompagnement") {
		return nil
	}
	rows, err := h.d.DB.R.QueryContext(ctx, `SELECT acc.activite_id, b.id, COALESCE(b.mediateur_id, ''),
		COALESCE(b.prenom, ''), COALESCE(b.nom, ''), COALESCE(b.genre, ''), COALESCE(b.tranche_age, ''), COALESCE(b.statut_social, '')
		FROM activite a JOIN accompagnement acc ON acc.activite_id = a.id JOIN beneficiaire b ON b.id = acc.beneficiaire_id
		WHERE `+where, args...)
	if err != nil {
		return fmt.Errorf("count beneficiaries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var actID, benID, owner, prenom, nom string
		var b beneficiary
		if err := rows.Scan(&actID, &benID, &owner, &prenom, &nom, &b.genre, &b.trancheAge, &b.statutSocial); err != nil {
			return fmt.Errorf("count beneficiaries: %w", err)
		}
		i, ok := index[actID]
		if !ok {
			continue
		}
		acts[i].Beneficiaires++
		// Names only to the conseiller who owns both the activity and
		// the beneficiary: a coordinator's view stays anonymous.
		if owner == v.UserID && acts[i].OwnerID == v.UserID {
			if n := strings.TrimSpace(prenom + " " + nom); n != "" {
				acts[i].BeneficiaryNames = append(acts[i].BeneficiaryNames, n)
			}
		}
		if agg != nil {
			agg.named[benID] = b
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count beneficiaries: %w", err)
	}
	if !h.hasTable("participants_anonymes") {
		return nil
	}
	return h.countAnonymous(ctx, where, args, acts, index, agg)
}

// beneficiaryAgg gathers who was met over a set of activities.
type beneficiaryAgg struct {
	named map[string]beneficiary
	// anonymous counts by "genre:feminin", "tranche_age:…", "statut_social:…"
	anonymous map[string]int
	anonTotal int
}

var anonymousColumns = func() []string {
	var cols []string
	for _, g := range []string{"feminin", "masculin", "non_communique"} {
		cols = append(cols, "genre_"+g)
	}
	for _, t := range []string{"moins_de_douze", "douze_dix_huit", "dix_huit_vingt_quatre", "vingt_cinq_trente_neuf",
		"quarante_cinquante_neuf", "soixante_soixante_neuf", "soixante_dix_plus", "non_communique"} {
		cols = append(cols, "tranche_age_"+t)
	}
	for _, s := range []string{"scolarise", "sans_emploi", "en_emploi", "retraite", "non_communique"} {
		cols = append(cols, "statut_social_"+s)
	}
	return cols
}()

func (h *Handler) countAnonymous(ctx context.Context, where string, args []any, acts []Activity, index map[string]int, agg *beneficiaryAgg) error {
	sel := make([]string, len(anonymousColumns))
	for i, c := range anonymousColumns {
		sel[i] = "COALESCE(" + h.col("p", "participants_anonymes", c) + ", 0)"
	}
	rows, err := h.d.DB.R.QueryContext(ctx, `SELECT p.activite_id, COALESCE(p.total, 0), `+strings.Join(sel, ", ")+`
		FROM activite a JOIN participants_anonymes p ON p.activite_id = a.id WHERE `+where, args...)
	if err != nil {
		return fmt.Errorf("count anonymous participants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var actID string
		var total int
		counts := make([]int, len(anonymousColumns))
		dest := []any{&actID, &total}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("count anonymous participants: %w", err)
		}
		i, ok := index[actID]
		if !ok {
			continue
		}
		acts[i].Anonymes += total
		if agg != nil {
			agg.anonTotal += total
			for j, c := range anonymousColumns {
				agg.anonymous[anonKey(c)] += counts[j]
			}
		}
	}
	return rows.Err()
}

// anonKey turns "tranche_age_soixante_dix_plus" into
// "tranche_age:soixante_dix_plus".
func anonKey(col string) string {
	for _, p := range []string{"genre_", "tranche_age_", "statut_social_"} {
		if v, ok := strings.CutPrefix(col, p); ok {
			return strings.TrimSuffix(p, "_") + ":" + v
		}
	}
	return col
}

// Stats are the Coop-style statistics of a set of activities.
type Stats struct {
	Filter         StatsFilter `json:"filter"`
	Activities     int         `json:"activites"`
	Accompaniments int         `json:"accompagnements"`
	// Beneficiaries counts the named people accompanied, each once
	// however often they came ("personnes accompagnées");
	// AnonymousParticipations counts the presences of anonymous workshop
	// participants, who cannot be told apart from one workshop to the
	// next, so each presence counts.
	Beneficiaries           int      `json:"beneficiaires"`
	AnonymousParticipations int      `json:"participations_anonymes"`
	TotalMinutes            int64    `json:"duree_totale_min"`
	ByMonth                 []Bucket `json:"par_mois"`
	ByType                  []Bucket `json:"par_type"`
	ByPlace                 []Bucket `json:"par_lieu"`
	ByDuration              []Bucket `json:"par_duree"`
	ByTheme                 []Bucket `json:"par_thematique"`
	ByMaterial              []Bucket `json:"par_materiel"`
	ByAge                   []Bucket `json:"par_tranche_age"`
	ByStatus                []Bucket `json:"par_statut_social"`
	ByGender                []Bucket `json:"par_genre"`
	ByCommune               []Bucket `json:"par_commune"`
	ByConseiller            []Bucket `json:"par_conseiller"`
	CommunesOmitted         int      `json:"communes_autres,omitempty"`
}

// Bucket is one category of a breakdown.
type Bucket struct {
	Key     string  `json:"key"`
	Label   string  `json:"label"`
	Count   int     `json:"count"`
	Percent float64 `json:"percent"`
}

// placeKey groups activities the way coordinators talk about places:
// home visits, itinerant stops (a structure that moves, like the PANDA
// tricycle), permanences in a fixed place, remote, elsewhere.
func placeKey(a Activity) string {
	if a.TypeLieu == "lieu_activite" && a.Itinerant {
		return "itinerant"
	}
	if a.TypeLieu == "" {
		return "non_renseigne"
	}
	return a.TypeLieu
}

var placeLabels = map[string]string{
	"lieu_activite": "Permanence (lieu d'activité)", "itinerant": "Arrêt itinérant",
	"domicile": "À domicile", "a_distance": "À distance", "autre": "Autre lieu", "non_renseigne": "Non renseigné",
}

var placeOrder = []string{"lieu_activite", "itinerant", "domicile", "a_distance", "autre", "non_renseigne"}

var durationOrder = []string{"moins_de_30", "30_a_60", "60_a_120", "120_et_plus", "non_renseigne"}

// durationLabel names a duration band: the Coop's bands (package domain),
// plus one for activities recorded without a duration.
func durationLabel(k string) string {
	if k == "non_renseigne" {
		return "Non renseignée"
	}
	return domain.Label(domain.DureeTranche, k)
}

func durationBand(d *int64) string {
	if d == nil {
		return "non_renseigne"
	}
	return domain.DureeTrancheOf(int(*d))
}

// maxCommunes keeps the commune breakdown readable; the rest are summed.
const maxCommunes = 15

func (h *Handler) stats(ctx context.Context, v Viewer, f StatsFilter) (Stats, []Activity, error) {
	agg := &beneficiaryAgg{named: map[string]beneficiary{}, anonymous: map[string]int{}}
	acts, err := h.activities(ctx, v, f, agg)
	if err != nil {
		return Stats{}, nil, err
	}
	st := Stats{Filter: f, Activities: len(acts)}
	month, typ, place, dur := counter{}, counter{}, counter{}, counter{}
	theme, mat, commune, who := counter{}, counter{}, counter{}, counter{}
	for _, a := range acts {
		n := a.Beneficiaires + a.Anonymes
		if n == 0 && a.Type != "collectif" {
			n = 1 // an individual accompaniment is one person, even unnamed
		}
		st.Accompaniments += n
		if a.Duree != nil {
			st.TotalMinutes += *a.Duree
		}
		month.add(dateOnly(a.Date)[:min(7, len(a.Date))], 1)
		typ.add(a.Type, 1)
		place.add(placeKey(a), 1)
		dur.add(durationBand(a.Duree), 1)
		for _, t := range a.Thematiques {
			theme.add(t, 1)
		}
		for _, m := range a.Materiel {
			mat.add(m, 1)
		}
		cm := a.Commune
		if cm == "" {
			cm = "Non renseignée"
		}
		commune.add(cm, 1)
		who.add(a.Owner, 1)
	}
	st.Beneficiaries, st.AnonymousParticipations = len(agg.named), agg.anonTotal
	gender, age, status := counter{}, counter{}, counter{}
	for _, b := range agg.named {
		gender.add(orNC(b.genre), 1)
		age.add(orNC(b.trancheAge), 1)
		status.add(orNC(b.statutSocial), 1)
	}
	for k, n := range agg.anonymous {
		dim, val, _ := strings.Cut(k, ":")
		switch dim {
		case "genre":
			gender.add(val, n)
		case "tranche_age":
			age.add(val, n)
		case "statut_social":
			status.add(val, n)
		}
	}
	st.ByMonth = month.months(f, h.loc)
	st.ByType = typ.ordered([]string{"individuel", "collectif"}, func(k string) string { return enumLabel("type", k) })
	st.ByPlace = place.ordered(placeOrder, func(k string) string { return placeLabels[k] })
	st.ByDuration = dur.ordered(durationOrder, durationLabel)
	st.ByTheme = theme.byCount(func(k string) string { return enumLabel("thematiques", k) })
	st.ByMaterial = mat.byCount(func(k string) string { return enumLabel("materiel", k) })
	st.ByGender = gender.ordered([]string{"feminin", "masculin", "non_communique"}, func(k string) string { return enumLabel("genre", k) })
	st.ByAge = age.ordered([]string{"moins_de_douze", "douze_dix_huit", "dix_huit_vingt_quatre", "vingt_cinq_trente_neuf",
		"quarante_cinquante_neuf", "soixante_soixante_neuf", "soixante_dix_plus", "non_communique"},
		func(k string) string { return enumLabel("tranche_age", k) })
	st.ByStatus = status.ordered([]string{"scolarise", "sans_emploi", "en_emploi", "retraite", "non_communique"},
		func(k string) string { return enumLabel("statut_social", k) })
	st.ByCommune = commune.byCount(func(k string) string { return k })
	if len(st.ByCommune) > maxCommunes {
		rest := 0
		for _, b := range st.ByCommune[maxCommunes:] {
			rest += b.Count
		}
		st.CommunesOmitted = len(st.ByCommune) - maxCommunes
		st.ByCommune = append(st.ByCommune[:maxCommunes], Bucket{Key: "autres", Label: fmt.Sprintf("Autres communes (%d)", st.CommunesOmitted), Count: rest})
		percentages(st.ByCommune)
	}
	if !v.Admin() && !v.Coordinator() {
		st.ByConseiller = nil
	} else {
		st.ByConseiller = who.byCount(func(k string) string { return k })
	}
	return st, acts, nil
}

func orNC(s string) string {
	if s == "" {
		return "non_communique"
	}
	return s
}

type counter map[string]int

func (c counter) add(k string, n int) { c[k] += n }

// ordered lists the categories in the Coop's order (empty ones included,
// so charts compare across periods), then any unknown ones.
func (c counter) ordered(order []string, label func(string) string) []Bucket {
	var out []Bucket
	for _, k := range order {
		out = append(out, Bucket{Key: k, Label: label(k), Count: c[k]})
	}
	var extra []string
	for k := range c {
		if !slices.Contains(order, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		lbl := label(k)
		if lbl == "" {
			lbl = k
		}
		out = append(out, Bucket{Key: k, Label: lbl, Count: c[k]})
	}
	percentages(out)
	return out
}

// byCount lists the categories most frequent first.
func (c counter) byCount(label func(string) string) []Bucket {
	out := make([]Bucket, 0, len(c))
	for k, n := range c {
		out = append(out, Bucket{Key: k, Label: label(k), Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Label < out[j].Label
	})
	percentages(out)
	return out
}

// months lists every month of the period, empty ones too.
func (c counter) months(f StatsFilter, loc *time.Location) []Bucket {
	from, _ := time.ParseInLocation(time.DateOnly, f.From, loc) // checked by filterFrom
	to, _ := time.ParseInLocation(time.DateOnly, f.To, loc)
	var out []Bucket
	for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, loc); !m.After(to) && len(out) < 120; m = m.AddDate(0, 1, 0) {
		k := m.Format("2006-01")
		out = append(out, Bucket{Key: k, Label: frenchMonth(m), Count: c[k]})
	}
	percentages(out)
	return out
}

var moisAbreges = []string{"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."}

func frenchMonth(t time.Time) string {
	return fmt.Sprintf("%s %d", moisAbreges[t.Month()-1], t.Year())
}

func percentages(bs []Bucket) {
	total := 0
	for _, b := range bs {
		total += b.Count
	}
	for i := range bs {
		if total > 0 {
			bs[i].Percent = float64(bs[i].Count) * 100 / float64(total)
		}
	}
}
