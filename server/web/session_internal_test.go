package web

import (
	"net/url"
	"strings"
	"testing"
)

// A post-login redirect stays on this site whatever is typed or forged.
func TestSafeNext(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"/", "/"},
		{"/conflits/3", "/conflits/3"},
		{"/flotte?jours=3", "/flotte?jours=3"},
		{"/conflits#x", "/conflits"},
		{"//evil.example/", ""},
		{"/\\evil.example", ""},
		{"/\t/evil.example", ""},   // browsers drop the tab: //evil.example
		{"/\r\n/evil.example", ""}, // and newlines
		{"/%2F/evil.example", ""},  // decoded path //evil.example
		{"/%5Cevil.example", ""},   // decoded path /\evil.example
		{"/%09/evil.example", ""},  // decoded path with a tab
		{"https://evil.example/", ""},
		{"javascript:alert(1)", ""},
		{"evil.example", ""},
		{"/\x7f", ""},
		{"/" + strings.Repeat("a", 3000), ""},
	}
	for _, c := range cases {
		if got := safeNext(c.in); got != c.want {
			t.Errorf("safeNext(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Whatever comes in, what comes out is empty or a path on this site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/conflits", "//x", "/\t/x", "/%2F/x", "https://x/", "/\\x", "/a?b=//c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		if out == "" {
			return
		}
		u, err := url.Parse(out)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") ||
			strings.HasPrefix(out, "/\\") || hasControl(out) || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(u.Path, "/\\") {
			t.Fatalf("safeNext(%q) = %q leaves the site", in, out)
		}
	})
}
