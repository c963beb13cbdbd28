// Package web holds the TypeScript device SDK for browsers (see
// README.md beside this file). Its only Go file is this test, which runs
// the SDK's own tests under Node's test runner, so that the README's one
// test command (go test ./...) runs them too. It builds the real server
// binary first and gives its path to the integration tests.
package web

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTypeScriptSDK runs `npm test` (type check, then node --test). It
// installs the locked dependencies with `npm ci` when node_modules is
// missing. Without node it skips, unless RELAIS_REQUIRE_NODE=1 (set by
// .ci/run), where it fails: a CI that cannot run the SDK's tests must
// not pass.
func TestTypeScriptSDK(t *testing.T) {
	_, nerr := exec.LookPath("node")
	npm, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		if os.Getenv("RELAIS_REQUIRE_NODE") == "1" {
			t.Fatalf("RELAIS_REQUIRE_NODE=1 but node or npm is not installed (node: %v, npm: %v)", nerr, perr)
		}
		t.Skip("node and npm are not installed: the TypeScript SDK's tests did not run (RELAIS_REQUIRE_NODE=1 makes this a failure)")
	}
	if v, err := exec.Command("node", "--version").Output(); err == nil {
		t.Logf("node %s", strings.TrimSpace(string(v)))
	}
	bin := filepath.Join(t.TempDir(), "relais")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/relais").CombinedOutput(); err != nil {
		t.Fatalf("build the server: %v\n%s", err, out)
	}
	env := append(os.Environ(), "RELAIS_SERVER_BIN="+bin)
	if _, err := os.Stat("node_modules"); os.IsNotExist(err) {
		run(t, env, npm, "ci", "--no-audit", "--no-fund")
	}
	run(t, env, npm, "test", "--silent")
}

// TestGoDoesNotWalkNodeModules: the npm packages installed here must
// never become Go packages of the module (go test ./... would build
// and test them). The go tool skips directories named node_modules;
// this holds it to that.
func TestGoDoesNotWalkNodeModules(t *testing.T) {
	out, err := exec.Command("go", "list", "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "node_modules") {
		t.Fatalf("go list ./... lists packages under node_modules:\n%s", out)
	}
	if !strings.Contains(string(out), "client-sdk/web") {
		t.Fatalf("go list did not list this package; the check is meaningless:\n%s", out)
	}
}

func run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v failed: %v\n%s", filepath.Base(name), args, err, out)
	}
	t.Logf("%s %v:\n%s", filepath.Base(name), args, out)
}
