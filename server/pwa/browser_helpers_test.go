package pwa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium starts a headless Chromium for one test and returns a tab, as
// the dashboard's tests do (server/web): Debian's browser, installed by
// .ci/run; where it is missing the test is skipped, unless
// RELAIS_REQUIRE_BROWSER is set (CI sets it), so a missing browser can
// never pass silently in CI.
func chromium(t testing.TB, width, height int) context.Context {
	t.Helper()
	path := os.Getenv("RELAIS_CHROMIUM")
	if path == "" {
		for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if found, err := exec.LookPath(p); err == nil {
				path = found
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("RELAIS_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found, and RELAIS_REQUIRE_BROWSER is set")
		}
		t.Skip("no Chromium on this machine (apt-get install chromium); set RELAIS_REQUIRE_BROWSER to make this fatal")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("lang", "fr-FR"),
	)
	// The deadline only stops a hung browser from hanging CI; nothing
	// asserts on how long a step takes.
	base, cancelBase := context.WithTimeout(context.Background(), 4*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // ends the Chromium process this test started
		cancelBase()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

func do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t testing.TB, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("read %s: %v", css, err)
	}
	return s
}

// js evaluates an expression in the page, awaiting it if it is a promise,
// and decodes its JSON value into T.
func js[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript condition (awaited when a promise) to be
// true, for at most a minute, then fails with what describe says.
func until(t testing.TB, ctx context.Context, cond string, describe string) {
	t.Helper()
	var last string
	for i := 0; i < 3000; i++ {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("(async () => { try { return !!(await ("+cond+")); } catch (e) { return false; } })()", chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	t.Fatalf("waited a minute for %s (%s); %s\npage:\n%s", describe, cond, last, state)
}

// ready waits until the app has drawn its page.
func ready(t testing.TB, ctx context.Context) {
	t.Helper()
	until(t, ctx, "document.body.dataset.pret === '1'", "the app to start")
}

// count runs a COUNT(*) query on the browser's replica.
func count(t testing.TB, ctx context.Context, query string) int {
	t.Helper()
	return js[int](t, ctx, fmt.Sprintf("window.relais.query(%s).then(r => Number(Object.values(r[0])[0]))", quote(query)))
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// offline cuts the browser off: the link drops every connection, and the
// browser is told it is offline (navigator.onLine false, its requests and
// its service worker's failing at once).
func offline(t testing.TB, ctx context.Context, l *link, off bool) {
	t.Helper()
	l.SetOnline(!off)
	emulate := true
	do(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			EmulateOfflineServiceWorker: &emulate,
			MatchedNetworkConditions:    []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}},
		}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	}))
}

func contains(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}
