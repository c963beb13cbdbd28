package server_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// The OpenAPI document served at /v1/openapi.json describes every route
// the app registers, and every route it describes exists (Fiber's HEAD
// twins of GET routes aside). Each operation lists its answers, and each
// {param} of a path is declared.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	status, raw := get(t, srv.URL+"/v1/openapi.json")
	if status != http.StatusOK {
		t.Fatalf("/v1/openapi.json answered %d", status)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Responses  map[string]any `json:"responses"`
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("/v1/openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	registered := map[string]bool{}
	for _, r := range srv.App().GetRoutes(true) {
		if r.Method == http.MethodHead || r.Method == "CONNECT" || r.Method == "TRACE" || r.Method == "OPTIONS" {
			continue
		}
		registered[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	described := map[string]bool{}
	braces := regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			described[key] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s lists no answers", key)
			}
			for _, m := range braces.FindAllStringSubmatch(path, -1) {
				found := false
				for _, p := range op.Parameters {
					found = found || (p.In == "path" && p.Name == m[1])
				}
				if !found {
					t.Errorf("%s does not declare its path parameter %s", key, m[1])
				}
			}
		}
	}
	var missing, extra []string
	for k := range registered {
		if !described[k] {
			missing = append(missing, k)
		}
	}
	for k := range described {
		if !registered[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server registers but server/openapi.json does not describe:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("routes server/openapi.json describes but the server does not register:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: GetRoutes did not list the app's routes", len(registered))
	}
}
