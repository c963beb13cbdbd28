package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
)

// progress draws one line that rewrites itself on a terminal, for work
// that lasts: an initial sync, a demo, a benchmark. Where stderr is not a
// terminal (a script, a log file) it writes nothing, so the output stays
// what the script expects.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
}

// newProgress returns a progress line on e's stderr, or nil when stderr
// is not a terminal; a nil *progress accepts every call and does nothing.
func newProgress(e *env) *progress {
	if e.isTerminal == nil || !e.isTerminal() {
		return nil
	}
	now := time.Now()
	return &progress{w: e.stderr, start: now}
}

// show redraws the line, at most five times a second unless force.
func (p *progress) show(force bool, format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "\r\033[K%s", fmt.Sprintf(format, args...))
	p.drawn = true
}

// elapsed is the time since the line started.
func (p *progress) elapsed() time.Duration { return time.Since(p.start) }

// done erases the line, so what follows starts on a clean line.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// syncLine is the progress line of a device sync: cells received, changes
// sent out of those waiting, bytes, time spent and, for the upload, the
// time left at the pace so far.
func syncLine(p *progress) func(device.Progress) {
	if p == nil {
		return nil
	}
	return func(s device.Progress) {
		if s.Retry != nil {
			p.show(true, "Serveur injoignable, nouvel essai dans %s — vos %s restent sur l'appareil", fr.Duration(s.RetryIn.Round(time.Second)), saisies(s.Outbox-s.Pushed))
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Synchronisation : %s cellules reçues", fr.Number(s.Pulled))
		if s.Outbox > 0 {
			fmt.Fprintf(&b, " · %s/%s modifications envoyées", fr.Number(s.Pushed), fr.Number(s.Outbox))
			el := p.elapsed()
			if s.Pushed > 0 && s.Pushed < s.Outbox {
				left := time.Duration(float64(el) * float64(s.Outbox-s.Pushed) / float64(s.Pushed))
				fmt.Fprintf(&b, " (reste environ %s)", fr.Duration(left.Round(time.Second)))
			}
		}
		fmt.Fprintf(&b, " · %s · %s", fr.Bytes(s.BytesUp+s.BytesDown), fr.Duration(p.elapsed().Round(time.Second)))
		p.show(false, "%s", b.String())
	}
}

// lineWriter shows each line written to it as the progress line, for
// code that reports steps to an io.Writer (the benchmark harness).
type lineWriter struct{ p *progress }

func (w lineWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			w.p.show(true, "%s · %s", l, fr.Duration(w.p.elapsed().Round(time.Second)))
		}
	}
	return len(b), nil
}

// writer returns an io.Writer onto the progress line, or nil when there
// is no line (not a terminal): callers treat nil as "report nothing".
func (p *progress) writer() io.Writer {
	if p == nil {
		return nil
	}
	return lineWriter{p}
}
