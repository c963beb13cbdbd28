package web

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/xuri/excelize/v2"
)

// Exports are CSV (semicolon-separated, UTF-8 with a byte-order mark, so
// that a French spreadsheet opens them with accents and columns right)
// and XLSX, with French headers and labels. They carry exactly what the
// viewer may see: team exports have no beneficiary names and no notes.

// table is an export before it is written in one format or the other.
type table struct {
	sheet  string
	header []string
	rows   [][]any
}

func (h *Handler) activityTable(v Viewer, acts []Activity) table {
	t := table{sheet: "Activités", header: []string{"Date", "Conseiller", "Type d'activité", "Type de lieu", "Structure",
		"Commune", "Code INSEE", "Durée (min)", "Tranche de durée", "Thématiques", "Matériel utilisé",
		"Autonomie du bénéficiaire", "Bénéficiaires nommés", "Participants anonymes"}}
	// Names and notes are the conseiller's own data: only their own export
	// has the columns at all.
	own := !v.Admin() && !v.Coordinator()
	if own {
		t.header = append(t.header, "Bénéficiaires (noms)", "Notes")
	}
	for _, a := range acts {
		var duree any = ""
		if a.Duree != nil {
			duree = *a.Duree
		}
		themes := make([]string, len(a.Thematiques))
		for i, x := range a.Thematiques {
			themes[i] = enumLabel("thematiques", x)
		}
		mats := make([]string, len(a.Materiel))
		for i, x := range a.Materiel {
			mats[i] = enumLabel("materiel", x)
		}
		lieu := placeLabels[placeKey(a)]
		if lieu == "" {
			lieu = enumLabel("type_lieu", a.TypeLieu)
		}
		row := []any{frenchDate(a.Date), a.Owner, enumLabel("type", a.Type), lieu, a.Structure, a.Commune, a.CodeInsee,
			duree, durationLabel(durationBand(a.Duree)), strings.Join(themes, ", "), strings.Join(mats, ", "),
			enumLabel("autonomie", a.Autonomie), a.Beneficiaires, a.Anonymes}
		if own {
			row = append(row, strings.Join(a.BeneficiaryNames, ", "), a.Notes)
		}
		t.rows = append(t.rows, row)
	}
	return t
}

func statsTable(st Stats) table {
	t := table{sheet: "Statistiques", header: []string{"Répartition", "Catégorie", "Nombre", "Part (%)"}}
	add := func(dim, cat string, n any, pct any) { t.rows = append(t.rows, []any{dim, cat, n, pct}) }
	add("Période", "du "+frenchDate(st.Filter.From)+" au "+frenchDate(st.Filter.To), "", "")
	add("Total", "Activités", st.Activities, "")
	add("Total", "Accompagnements", st.Accompaniments, "")
	add("Total", "Personnes accompagnées (comptées une fois)", st.Beneficiaries, "")
	add("Total", "Participations anonymes à des ateliers (chaque présence)", st.AnonymousParticipations, "")
	add("Total", "Durée totale (heures)", float64(st.TotalMinutes)/60, "")
	for _, sec := range []struct {
		name string
		bs   []Bucket
	}{
		{"Mois", st.ByMonth}, {"Type d'activité", st.ByType}, {"Type de lieu", st.ByPlace},
		{"Durée", st.ByDuration}, {"Thématique", st.ByTheme}, {"Matériel utilisé", st.ByMaterial},
		{"Tranche d'âge", st.ByAge}, {"Statut social", st.ByStatus}, {"Genre", st.ByGender},
		{"Commune", st.ByCommune}, {"Conseiller", st.ByConseiller},
	} {
		for _, b := range sec.bs {
			add(sec.name, b.Label, b.Count, roundTenth(b.Percent))
		}
	}
	return t
}

func roundTenth(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 1, 64), 64) // formatted above, parses
	return v
}

// csvBytes writes t as CSV. Text cells that a spreadsheet would run as a
// formula (=, +, -, @ first) get a leading apostrophe: a commune typed as
// "=HYPERLINK(…)" on a device must not become a link in Excel.
func csvBytes(t table) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := csv.NewWriter(&buf)
	w.Comma = ';'
	w.UseCRLF = true
	if err := w.Write(t.header); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	for _, r := range t.rows {
		rec := make([]string, len(r))
		for i, v := range r {
			switch x := v.(type) {
			case string:
				if x != "" && strings.ContainsRune("=+-@\t\r", rune(x[0])) {
					x = "'" + x
				}
				rec[i] = x
			case float64:
				rec[i] = strings.Replace(strconv.FormatFloat(x, 'f', -1, 64), ".", ",", 1)
			default:
				rec[i] = fmt.Sprint(x)
			}
		}
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("write CSV: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	return buf.Bytes(), nil
}

// xlsxBytes writes t as one sheet with a bold, frozen header row.
func xlsxBytes(t table) ([]byte, error) {
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", t.sheet); err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	sw, err := f.NewStreamWriter(t.sheet)
	if err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	if err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	head := make([]any, len(t.header))
	for i, hd := range t.header {
		head[i] = excelize.Cell{StyleID: bold, Value: hd}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	if err := sw.SetRow("A1", head); err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	for i, r := range t.rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+2) // row and column are positive
		if err := sw.SetRow(cell, r); err != nil {
			return nil, fmt.Errorf("write XLSX: %w", err)
		}
	}
	if err := sw.Flush(); err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	buf, err := f.WriteToBuffer()
	if err != nil {
		return nil, fmt.Errorf("write XLSX: %w", err)
	}
	return buf.Bytes(), nil
}

func (h *Handler) exportsPage(c *fiber.Ctx) error {
	f, err := h.filterFrom(c)
	if err != nil {
		return h.pageError(c, err)
	}
	opts, err := h.filterOptions(c.UserContext(), viewer(c))
	if err != nil {
		return h.pageError(c, err)
	}
	return h.render(c, fiber.StatusOK, "exports", pageData{Title: "Exports", Nav: "exports",
		Data: statsView{Filter: f, Options: opts, Query: filterQuery(f)}})
}

// exportFile serves /exports/{activites,statistiques}.{csv,xlsx}.
func (h *Handler) exportFile(c *fiber.Ctx) error {
	name, ext, _ := strings.Cut(c.Params("file"), ".")
	if (name != "activites" && name != "statistiques") || (ext != "csv" && ext != "xlsx") {
		return h.errorPage(c, fiber.StatusNotFound, "Cet export n'existe pas.")
	}
	f, err := h.filterFrom(c)
	if err != nil {
		return h.pageError(c, err)
	}
	v := viewer(c)
	st, acts, err := h.stats(c.UserContext(), v, f)
	if err != nil {
		return h.pageError(c, err)
	}
	t := statsTable(st)
	if name == "activites" {
		t = h.activityTable(v, acts)
	}
	var data []byte
	if ext == "csv" {
		data, err = csvBytes(t)
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		data, err = xlsxBytes(t)
		c.Set(fiber.HeaderContentType, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	}
	if err != nil {
		return h.pageError(c, err)
	}
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="relais-%s-%s-%s.%s"`, name, f.From, f.To, ext))
	c.Set("Cache-Control", "no-store")
	h.d.Log.Info("dashboard export", "user", v.UserID, "export", name, "format", ext, "rows", len(t.rows))
	return c.Send(data)
}
