package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/relais-numerique/relais"

// pkg is what go list says of one package, without its tests.
type pkg struct {
	ImportPath string
	Imports    []string // direct
	Deps       []string // transitive
}

// ioPackages are the standard packages that reach outside the process.
// syncproto must not import them directly; its dependencies may (fmt
// imports os), which is why the rule is on direct imports.
var ioPackages = []string{
	"database/sql", "database/sql/driver", "io/fs", "io/ioutil", "log", "log/slog", "log/syslog",
	"net", "os", "os/exec", "os/signal", "os/user", "path/filepath", "plugin", "syscall",
}

func isIO(path string) bool {
	return slices.Contains(ioPackages, path) || strings.HasPrefix(path, "net/") || strings.HasPrefix(path, "os/")
}

func ours(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func within(path, root string) bool {
	return path == module+"/"+root || strings.HasPrefix(path, module+"/"+root+"/")
}

// violations lists every import that breaks a layering rule.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		switch {
		case within(p.ImportPath, "syncproto"):
			for _, d := range p.Deps {
				if ours(d) && !within(d, "syncproto") {
					out = append(out, fmt.Sprintf("%s depends on %s: the protocol imports nothing of this module", p.ImportPath, d))
				}
			}
			for _, d := range p.Imports {
				if isIO(d) {
					out = append(out, fmt.Sprintf("%s imports %s: the protocol does no I/O", p.ImportPath, d))
				}
			}
		case within(p.ImportPath, "replica"):
			for _, d := range p.Deps {
				if ours(d) && !within(d, "syncproto") && !within(d, "replica") {
					out = append(out, fmt.Sprintf("%s depends on %s: the merge engine imports only syncproto of this module", p.ImportPath, d))
				}
			}
		}
		for _, pair := range [][2]string{{"server", "client-sdk"}, {"client-sdk", "server"}} {
			if !within(p.ImportPath, pair[0]) {
				continue
			}
			for _, d := range p.Deps {
				if within(d, pair[1]) {
					out = append(out, fmt.Sprintf("%s depends on %s: the server and the device SDK meet only on the wire", p.ImportPath, d))
				}
			}
		}
	}
	return out
}

// list runs go list on every package of the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestLayers(t *testing.T) {
	pkgs := list(t)
	// The rules name packages by path: if one moved, they would hold
	// vacuously. Each layer they guard must be there.
	for _, want := range []string{"syncproto", "replica", "server", "server/scope", "client-sdk/device"} {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == module+"/"+want }) {
			t.Errorf("package %s/%s not found: update the layering rules", module, want)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestRulesBite checks each rule on made-up packages, so that a rule
// that stopped matching anything would be seen.
func TestRulesBite(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	cases := []struct {
		name string
		pkg  pkg
		bad  bool
	}{
		{"protocol importing the domain", pkg{m("syncproto"), []string{m("domain")}, []string{m("domain")}}, true},
		{"protocol importing os", pkg{m("syncproto"), []string{"os"}, []string{"os"}}, true},
		{"protocol importing net/http", pkg{m("syncproto"), []string{"net/http"}, []string{"net/http"}}, true},
		{"protocol using fmt, which uses os", pkg{m("syncproto"), []string{"fmt", "github.com/google/uuid"}, []string{"fmt", "os"}}, false},
		{"merge engine importing the store", pkg{m("replica"), []string{m("store")}, []string{m("store"), m("syncproto")}}, true},
		{"merge engine importing the protocol and SQL", pkg{m("replica"), []string{m("syncproto"), "database/sql"}, []string{m("syncproto"), "database/sql"}}, false},
		{"server reaching the SDK through another package", pkg{m("server/web"), []string{m("demo")}, []string{m("demo"), m("client-sdk/device")}}, true},
		{"SDK importing the server", pkg{m("client-sdk/device"), []string{m("server/auth")}, []string{m("server/auth")}}, true},
		{"SDK importing the merge engine", pkg{m("client-sdk/device"), []string{m("replica")}, []string{m("replica"), m("syncproto")}}, false},
		{"a command importing both", pkg{m("cmd/relais"), []string{m("server"), m("client-sdk/device")}, []string{m("server"), m("client-sdk/device")}}, false},
	}
	for _, c := range cases {
		if got := len(violations([]pkg{c.pkg})) > 0; got != c.bad {
			t.Errorf("%s: violation found = %v, want %v", c.name, got, c.bad)
		}
	}
}
