package web

import (
	"fmt"
	"github.com/relais-numerique/relais/internal/fr"
	"html/template"
	"strings"
)

// Charts are SVG drawn on the server: no script to load on a weak link,
// and they print. Each has a text alternative (role="img", <title>) and
// the page shows the same numbers in a table beside it.

const (
	chartBlue = "#000091" // the State's "bleu France": 14.9:1 on white
	chartGrey = "#3a3a3a"
)

// barChart draws one horizontal bar per category, labels on the left and
// counts at the end of each bar.
func barChart(title string, bs []Bucket) template.HTML {
	const labelW, barW, rowH, countW = 310, 280, 26, 60
	maxN := 0
	for _, b := range bs {
		maxN = max(maxN, b.Count)
	}
	h := rowH*len(bs) + 8
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" role="img" aria-labelledby="t-%[1]s" viewBox="0 0 %[2]d %[3]d" width="100%%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">`,
		slug(title), labelW+barW+countW, h)
	fmt.Fprintf(&sb, `<title id="t-%s">%s</title>`, slug(title), template.HTMLEscapeString(title+" : "+summary(bs)))
	for i, b := range bs {
		y := i*rowH + 4
		w := 0
		if maxN > 0 {
			w = b.Count * barW / maxN
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end" fill="%s" font-size="14">%s</text>`,
			labelW-8, y+17, chartGrey, template.HTMLEscapeString(clipLabel(b.Label, 40)))
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" rx="2"/>`, labelW, y+3, max(w, 1), rowH-8, chartBlue)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" fill="%s" font-size="14">%s</text>`, labelW+max(w, 1)+6, y+17, chartGrey, fr.Number(b.Count))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // built from escaped labels and numbers only
}

// columnChart draws one column per month.
func columnChart(title string, bs []Bucket) template.HTML {
	const colW, plotH, top, bottom, left = 44, 180, 20, 48, 8
	maxN := 0
	for _, b := range bs {
		maxN = max(maxN, b.Count)
	}
	w := left + colW*len(bs) + 8
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart columns" role="img" aria-labelledby="t-%[1]s" viewBox="0 0 %[2]d %[3]d" width="100%%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">`,
		slug(title), max(w, 200), top+plotH+bottom)
	fmt.Fprintf(&sb, `<title id="t-%s">%s</title>`, slug(title), template.HTMLEscapeString(title+" : "+summary(bs)))
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, left, top+plotH, w-8, top+plotH, chartGrey)
	for i, b := range bs {
		x := left + i*colW
		hgt := 0
		if maxN > 0 {
			hgt = b.Count * plotH / maxN
		}
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" rx="2"/>`, x+6, top+plotH-hgt, colW-12, hgt, chartBlue)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="middle" fill="%s" font-size="12">%s</text>`, x+colW/2, top+plotH-hgt-4, chartGrey, fr.Number(b.Count))
		month, year, _ := strings.Cut(b.Label, " ")
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="middle" fill="%s" font-size="12">%s</text>`, x+colW/2, top+plotH+18, chartGrey, template.HTMLEscapeString(month))
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="middle" fill="%s" font-size="11">%s</text>`, x+colW/2, top+plotH+34, chartGrey, template.HTMLEscapeString(year))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // built from escaped labels and numbers only
}

// summary is the chart's text alternative: every category and its count.
func summary(bs []Bucket) string {
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("%s %s", b.Label, fr.Number(b.Count)))
	}
	return strings.Join(parts, ", ")
}

func clipLabel(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}
