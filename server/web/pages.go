package web

import (
	"context"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris even on a machine without a zone database

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/fr"
)

// paris is the time zone every date on the pages is shown in.
func paris() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return time.UTC // cannot happen with time/tzdata embedded
	}
	return loc
}

// funcs are the templates' helpers: French dates and durations.
func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"datetime": func(t time.Time) string {
			if t.IsZero() {
				return "jamais"
			}
			return fr.DateTime(t) // Paris time, with its zone: CET or CEST
		},
		"ago":  func(t time.Time) string { return h.ago(t) },
		"date": frenchDate,
		"offset": func(ms *int64) string {
			if ms == nil {
				return "inconnu"
			}
			d := time.Duration(*ms) * time.Millisecond
			switch {
			case d > -time.Second && d < time.Second:
				return "à l'heure"
			case d > 0:
				return "en avance de " + frenchDuration(d)
			}
			return "en retard de " + frenchDuration(-d)
		},
		"num": func(n *int64) string {
			if n == nil {
				return "—"
			}
			return fmt.Sprint(*n)
		},
		"hours": func(min int64) string {
			if min%60 == 0 {
				return fr.Number(min/60) + " h"
			}
			return fmt.Sprintf("%s h %02d", fr.Number(min/60), min%60)
		},
		// n writes a count with French digit groups: 21 923.
		"n":    func(n int) string { return fr.Number(n) },
		"pct":  func(f float64) string { return fmt.Sprintf("%.1f %%", f) },
		"bars": barChart,
		"short": func(id string) string {
			if len(id) > 8 {
				return id[len(id)-8:]
			}
			return id
		},
		// dict passes several values to a shared template.
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict needs key-value pairs")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict keys must be strings")
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"columns": columnChart,
	}
}

// ago says how long ago t was, in French words.
func (h *Handler) ago(t time.Time) string {
	if t.IsZero() {
		return "jamais"
	}
	d := h.d.Now().Sub(t)
	switch {
	case d < time.Minute:
		return "à l'instant"
	case d < time.Hour:
		return fmt.Sprintf("il y a %d min", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("il y a %d h", int(d.Hours()))
	case d < 48*time.Hour:
		return "hier"
	}
	return fmt.Sprintf("il y a %d jours", int(d.Hours()/24))
}

func frenchDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	return fmt.Sprintf("%d h %02d", int(d.Hours()), int(d.Minutes())%60)
}

// option is one choice of a filter's select.
type option struct {
	Value, Label string
}

// filterOptions are the choices of the statistics filters: the people the
// viewer may see, place types, structures.
type filterOptions struct {
	Conseillers []option
	Lieux       []option
	Structures  []option
	Types       []option
	Themes      []option
}

func (h *Handler) filterOptions(ctx context.Context, v Viewer) (filterOptions, error) {
	var o filterOptions
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return o, err
	}
	// The people filter lists the conseillers the viewer follows, by
	// name, never the viewer herself; a conseillère sees only her own
	// activities and gets no such filter.
	switch {
	case !v.Admin() && !v.Coordinator():
	case sc.all:
		rows, err := h.d.DB.R.QueryContext(ctx, `SELECT id, COALESCE(NULLIF(name, ''), email) FROM _users
			WHERE role = 'conseiller' AND id != ? ORDER BY 2`, v.UserID)
		if err != nil {
			return o, fmt.Errorf("read accounts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var op option
			if err := rows.Scan(&op.Value, &op.Label); err != nil {
				return o, fmt.Errorf("read accounts: %w", err)
			}
			o.Conseillers = append(o.Conseillers, op)
		}
		if err := rows.Err(); err != nil {
			return o, fmt.Errorf("read accounts: %w", err)
		}
	default:
		names, err := h.userNames(ctx)
		if err != nil {
			return o, err
		}
		seen := map[string]bool{v.UserID: true}
		for _, m := range sc.members {
			if !seen[m.UserID] {
				seen[m.UserID] = true
				o.Conseillers = append(o.Conseillers, option{m.UserID, names[m.UserID]})
			}
		}
		slices.SortFunc(o.Conseillers, func(a, b option) int { return strings.Compare(a.Label, b.Label) })
	}
	// The same place types, with the same labels, as the chart and the
	// exports (placeKey, placeLabels).
	for _, k := range placeOrder {
		o.Lieux = append(o.Lieux, option{k, placeLabels[k]})
	}
	for _, k := range []string{"individuel", "collectif"} {
		o.Types = append(o.Types, option{k, enumLabel("type", k)})
	}
	if e, ok := domain.Lookup(domain.Thematique); ok {
		for _, t := range e.Options {
			o.Themes = append(o.Themes, option{t.Value, t.Label})
		}
	}
	rows, err := h.d.DB.R.QueryContext(ctx, "SELECT id, COALESCE(nom, id) FROM structure ORDER BY nom LIMIT 500")
	if err != nil {
		return o, fmt.Errorf("read structures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var op option
		if err := rows.Scan(&op.Value, &op.Label); err != nil {
			return o, fmt.Errorf("read structures: %w", err)
		}
		o.Structures = append(o.Structures, op)
	}
	return o, rows.Err()
}

// filterQuery is the filter as a query string, for export links.
func filterQuery(f StatsFilter) string {
	q := url.Values{}
	q.Set("du", f.From)
	q.Set("au", f.To)
	for k, v := range map[string]string{"conseiller": f.Mediateur, "lieu": f.TypeLieu, "structure": f.Structure,
		"type": f.Type, "thematique": f.Theme} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

type statsView struct {
	Filter  StatsFilter
	Options filterOptions
	Query   string
	Stats   Stats
}

func (h *Handler) statsPage(c *fiber.Ctx) error {
	f, err := h.filterFrom(c)
	if err != nil {
		return h.pageError(c, err)
	}
	v := viewer(c)
	opts, err := h.filterOptions(c.UserContext(), v)
	if err != nil {
		return h.pageError(c, err)
	}
	st, _, err := h.stats(c.UserContext(), v, f)
	if err != nil {
		return h.pageError(c, err)
	}
	return h.render(c, fiber.StatusOK, "statistiques", pageData{Title: "Statistiques", Nav: "statistiques",
		Data: statsView{Filter: f, Options: opts, Query: filterQuery(f), Stats: st}})
}
