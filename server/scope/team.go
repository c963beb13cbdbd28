package scope

import "sort"

// Period is the span of one coordination, as ISO days; "" is open-ended.
type Period struct {
	From, To string
}

// Holds reports whether a date ("2006-01-02", a time part ignored) is
// inside the period.
func (p Period) Holds(date string) bool { return window{p.From, p.To}.holds(day(date)) }

// Team returns the médiateurs the principal coordinates, each with the
// periods of their coordinations in order of start; empty for anyone but
// a coordinator. The web dashboard (server/web) reads a coordinator's team
// from here, so its pages and the devices' pulls follow the same rows.
func (v *View) Team() map[string][]Period {
	out := make(map[string][]Period, len(v.team))
	for m, ws := range v.team {
		ps := make([]Period, len(ws))
		for i, w := range ws {
			ps[i] = Period{From: w.from, To: w.to}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].From < ps[j].From })
		out[m] = ps
	}
	return out
}
