package web

import (
	"strings"
	"testing"
)

// A value typed on a device must never run as a formula in the
// coordinator's spreadsheet.
func TestCSVNeutralisesFormulas(t *testing.T) {
	data, err := csvBytes(table{header: []string{"Commune", "Notes", "Durée"},
		rows: [][]any{{"=HYPERLINK(\"http://x\")", "+33 6 12", int64(45)}, {"@SUM(A1)", "-", 1.5}}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	for _, want := range []string{`'=HYPERLINK(""http://x"")`, "'+33 6 12", ";45\r\n", "'@SUM(A1)", ";'-;", ";1,5\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("CSV lacks %q:\n%s", want, got)
		}
	}
}

func TestListsAndBands(t *testing.T) {
	if got := splitList(`["email","sante"]`); strings.Join(got, "|") != "email|sante" {
		t.Errorf("splitList JSON = %v", got)
	}
	if got := valueLabel("thematiques", `["email","argent_impots"]`); got != "E-mail, Argent - Impôts" {
		t.Errorf("valueLabel of a theme list = %q", got)
	}
	if got := valueLabel("type_lieu", "domicile"); got != "À domicile" {
		t.Errorf("valueLabel(type_lieu) = %q", got)
	}
	if got := valueLabel("duree", nil); got != "(vide)" {
		t.Errorf("valueLabel(nil) = %q", got)
	}
	for d, want := range map[int64]string{1: "moins_de_30", 30: "30_a_60", 59: "30_a_60", 60: "60_a_120", 120: "120_et_plus"} {
		if got := durationBand(&d); got != want {
			t.Errorf("durationBand(%d) = %q, want %q", d, got, want)
		}
	}
	if got := safeNext("//evil.example"); got != "" {
		t.Errorf("safeNext kept an off-site address: %q", got)
	}
	if got := safeNext("/flotte?jours=5"); got != "/flotte?jours=5" {
		t.Errorf("safeNext dropped a local path: %q", got)
	}
}
