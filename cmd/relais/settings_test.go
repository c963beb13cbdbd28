package main

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite README.md's settings table from the settings list")

// settingsTable writes the README's table of settings.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("| Flag | Variable | Default | Commands | Meaning |\n|---|---|---|---|---|\n")
	for _, s := range settings {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "—"
		}
		b.WriteString("| `--" + s.Flag + "` | `" + s.Env + "` | " + def + " | " + s.Where + " | " + s.Help + " |\n")
	}
	return b.String()
}

// README.md's settings table is the settings list, so the documented
// defaults are the ones the code applies. Run with -update to rewrite it.
func TestREADMESettingsTable(t *testing.T) {
	const begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q … %q markers around the settings table", begin, end)
	}
	want := settingsTable()
	if got := readme[i+len(begin) : j]; got != want {
		if *update {
			if err := os.WriteFile("../../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's settings table differs from the settings list (go test ./cmd/relais -run TestREADMESettingsTable -update):\n%s", want)
	}
}

// Every setting's default parses as its flag does, and each flag and
// variable is declared once.
func TestSettingsAreUnique(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if flags[s.Flag] || envs[s.Env] {
			t.Errorf("setting %s / %s declared twice", s.Flag, s.Env)
		}
		flags[s.Flag], envs[s.Env] = true, true
		if !strings.HasPrefix(s.Env, "RELAIS_") {
			t.Errorf("variable %s does not start with RELAIS_", s.Env)
		}
	}
	if d, err := time.ParseDuration(setRetention.Default); err != nil || d != 365*24*time.Hour {
		t.Errorf("retention default %q: %v", setRetention.Default, err)
	}
}

// A malformed RELAIS_* value stops the command with a French message and
// exit code 2, instead of being replaced by the default; a flag given on
// the command line wins over the variable.
func TestMalformedVariableIsAnError(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		args       []string
		code       int
		want       string
	}{
		{"RELAIS_RETENTION", "1 an", []string{"serve", "--data", t.TempDir()}, 2, "la variable RELAIS_RETENTION vaut « 1 an »"},
		{"RELAIS_ACCESS_TTL", "quinze", []string{"serve", "--data", t.TempDir()}, 2, "RELAIS_ACCESS_TTL"},
		{"RELAIS_MAX_CLOCK_AHEAD", "5", []string{"serve", "--data", t.TempDir()}, 2, "écrivez une durée"},
	} {
		var out, errb strings.Builder
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
			getenv: func(k string) string {
				if k == tc.env {
					return tc.value
				}
				return ""
			}}
		code := run(t.Context(), tc.args, e)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s=%q: exit %d, stderr %q; want exit %d with %q", tc.env, tc.value, code, errb.String(), tc.code, tc.want)
		}
	}
}

// The package comment lists every command of the table, and help lists
// all but the hidden ones.
func TestPackageCommentListsCommands(t *testing.T) {
	raw, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(raw), "package main")
	var help strings.Builder
	usage(&help)
	for _, c := range commands {
		if c.hidden {
			if strings.Contains(help.String(), c.path) {
				t.Errorf("help lists the internal command %q", c.path)
			}
			continue
		}
		words := strings.Fields(c.path)
		group, last := strings.Join(words[:len(words)-1], " "), words[len(words)-1]
		found := false
		for _, line := range strings.Split(doc, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "//"))
			rest, ok := strings.CutPrefix(line, "relais "+group)
			if group == "" {
				rest, ok = strings.CutPrefix(line, "relais ")
			}
			if !ok {
				continue
			}
			for _, f := range strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '|' || r == '\t' }) {
				if f == last {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("the package comment of main.go does not list %q", c.path)
		}
		if !strings.Contains(help.String(), c.path) {
			t.Errorf("help does not list %q", c.path)
		}
	}
}
