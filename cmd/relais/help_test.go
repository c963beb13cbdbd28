package main

import (
	"strings"
	"testing"
)

// Help and version: what they print, on which stream, with which exit
// code.
func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		out    []string // on stdout
		errs   string   // on stderr
		notAny string   // on neither
	}{
		{"no argument", nil, 0, []string{"usage : relais COMMANDE", "device sync", "admin user add"}, "", "bench _server"},
		{"help", []string{"help"}, 0, []string{"Commandes :"}, "", "bench _server"},
		{"-h", []string{"-h"}, 0, []string{"Commandes :"}, "", ""},
		{"command -h", []string{"device", "sql", "-h"}, 0, []string{"usage : relais device sql [options] SQL", "--csv", "RELAIS_DB"}, "", "flag: help requested"},
		{"help command", []string{"help", "admin", "device", "revoke"}, 0, []string{"usage : relais admin device revoke [options] ID"}, "", "flag: help requested"},
		{"unknown command", []string{"devise", "sync"}, 2, nil, "commande inconnue « devise sync »", ""},
		{"unknown flag", []string{"device", "status", "--bd", "x.db"}, 2, nil, "option inconnue : -bd", "flag provided"},
		{"version", []string{"version"}, 0, []string{"relais dev"}, "", ""},
	} {
		out, errs, code := cli(t, "", tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, errs)
		}
		for _, w := range tc.out {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", tc.name, w, out)
			}
		}
		if !strings.Contains(errs, tc.errs) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, errs, tc.errs)
		}
		if tc.notAny != "" && (strings.Contains(out, tc.notAny) || strings.Contains(errs, tc.notAny)) {
			t.Errorf("%s: output shows %q", tc.name, tc.notAny)
		}
	}
}
