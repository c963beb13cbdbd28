package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/syncproto"
)

// fault is what the network does to one exchange.
type fault int

const (
	deliver      fault = iota
	dropRequest        // the request never reaches the server
	dropAnswer         // the server commits, the answer is lost
	duplicate          // the request arrives twice; the device sees the second answer
	delayRequest       // the request is held and arrives later, after others; the device times out
	replayLater        // delivered now, and a copy arrives again later
)

func (f fault) String() string {
	return [...]string{"deliver", "drop-request", "drop-answer", "duplicate", "delay", "replay-later"}[f]
}

// errNetwork is what the device's HTTP client sees when the simulated
// network loses a message. It is a transport error, so the SDK treats it
// as it would treat a dead link.
var errNetwork = errors.New("sim: connection lost")

// heldRequest is a request the network delays; it is delivered at a later
// step, and whatever it answers is lost.
type heldRequest struct {
	dev  *Device
	req  capturedRequest
	step int
}

type capturedRequest struct {
	method, url string
	header      http.Header
	body        []byte
}

// link is one device's network: an http.RoundTripper that hands requests
// to the real Fiber app of whichever server incarnation is running, under
// the world's fault plan. Exchanges are synchronous, so the world's random
// source is drawn in a fixed order and a seed replays the same faults.
type link struct {
	w   *World
	dev *Device
}

func (l *link) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("sim: read request: %w", err)
		}
	}
	cr := capturedRequest{method: req.Method, url: req.URL.String(), header: req.Header.Clone(), body: body}
	w := l.w
	f := w.drawFault()
	if w.faulty && w.rng.IntN(100) < 6 {
		// The application writes while the exchange is on the wire.
		w.tracef("  %s writes during its exchange", l.dev.name)
		if err := w.write(l.dev); err != nil {
			return nil, fmt.Errorf("sim: write during exchange: %w", err)
		}
	}
	w.tracef("  net %s %s %s", l.dev.name, req.URL.Path, f)
	switch f {
	case dropRequest:
		return nil, errNetwork
	case delayRequest:
		w.held = append(w.held, heldRequest{dev: l.dev, req: cr, step: w.step})
		return nil, errNetwork
	case dropAnswer:
		if _, err := w.serve(l.dev, cr, false); err != nil {
			return nil, err
		}
		return nil, errNetwork
	case duplicate:
		if _, err := w.serve(l.dev, cr, false); err != nil {
			return nil, err
		}
	case replayLater:
		w.held = append(w.held, heldRequest{dev: l.dev, req: cr, step: w.step})
	}
	return w.serve(l.dev, cr, true)
}

// serve hands one request to the running server's real HTTP stack and
// records what the exchange said about batches. delivered says whether the
// device will see the answer.
func (w *World) serve(d *Device, cr capturedRequest, delivered bool) (*http.Response, error) {
	srv := w.server()
	if srv == nil {
		return nil, errNetwork // the server is down between a kill and its restart
	}
	req, err := http.NewRequest(cr.method, cr.url, bytes.NewReader(cr.body))
	if err != nil {
		return nil, fmt.Errorf("sim: rebuild request: %w", err)
	}
	req.Header = cr.header.Clone()
	if srv == w.second {
		w.bySecond.Add(1)
	}
	res, err := srv.App().Test(req, -1)
	if err != nil {
		return nil, fmt.Errorf("sim: serve: %w", err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("sim: read answer: %w", err)
	}
	w.obsMu.Lock()
	w.observe(d, cr, res, raw, delivered)
	w.obsMu.Unlock()
	res.Body = io.NopCloser(bytes.NewReader(raw))
	return res, nil
}

// observe reads an exchange off the wire: the batch a device pushed, and
// whether and how the server acknowledged it. This is the ground truth the
// invariants are checked against; it reads the real bytes, never the
// device's or the server's own bookkeeping.
func (w *World) observe(d *Device, cr capturedRequest, res *http.Response, raw []byte, delivered bool) {
	if !strings.HasSuffix(cr.url, syncproto.PathSync) {
		return
	}
	reqBody, err := gunzipIf(cr.header.Get("Content-Encoding"), cr.body)
	if err != nil {
		w.violate("device %s sent an undecodable body: %v", d.name, err)
		return
	}
	decodeReq := syncproto.DecodeRequest
	if syncproto.IsColumns(cr.header.Get("Content-Type")) {
		decodeReq = syncproto.DecodeRequestColumns
	}
	sreq, err := decodeReq(reqBody)
	if err != nil {
		w.violate("device %s sent an invalid exchange: %v", d.name, err)
		return
	}
	if sreq.Push != nil {
		key := batchKey{d.node, sreq.Push.ID}
		if prev, ok := w.batches[key]; ok {
			if !sameBatch(prev.changes, sreq.Push.Changes) {
				w.violate("device %s re-sent batch %s with different content", d.name, sreq.Push.ID)
			}
		} else {
			w.batches[key] = &batchInfo{dev: d, changes: sreq.Push.Changes}
		}
	}
	if res.StatusCode != http.StatusOK {
		var eb syncproto.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		code := syncproto.Code("?")
		if eb.Error != nil {
			code = eb.Error.Code
		}
		w.tracef("    answer %d %s", res.StatusCode, code)
		w.refusals[string(code)]++
		// The one allowed refusal of a whole exchange: the clock of the
		// device set beyond the bound. Rows refused for their content
		// (rules broken by concurrent writes, scope) come in a 200
		// answer, the rest of their batch applied.
		if !(code == syncproto.CodeClockAhead && d.beyondBound) {
			w.violate("device %s: exchange refused with %d %s", d.name, res.StatusCode, code)
		}
		return
	}
	ansBody, err := gunzipIf(res.Header.Get("Content-Encoding"), raw)
	if err != nil {
		w.violate("server answered %s with undecodable gzip: %v", d.name, err)
		return
	}
	decode := syncproto.DecodeResponse
	if syncproto.IsColumns(res.Header.Get("Content-Type")) {
		decode = syncproto.DecodeResponseColumns
	}
	ans, err := decode(ansBody)
	if err != nil {
		w.violate("server answered %s with an invalid exchange: %v", d.name, err)
		return
	}
	w.tracef("    answer ack=%q applied=%d conflicts=%d changes=%d cursor=%d more=%v",
		ans.Ack, ans.Applied, len(ans.Conflicts), len(ans.Changes), ans.Cursor, ans.More)
	if sreq.Push != nil {
		if ans.Ack != sreq.Push.ID {
			w.violate("server answered batch %s with ack %q", sreq.Push.ID, ans.Ack)
			return
		}
		bi := w.batches[batchKey{d.node, ans.Ack}]
		sum, _ := json.Marshal(struct {
			A int
			C []syncproto.ConflictReport
			R []syncproto.Refusal
		}{ans.Applied, ans.Conflicts, ans.Refused})
		if bi.answer == nil {
			bi.answer = sum
			bi.refused = map[syncproto.RowKey]bool{}
			for _, rf := range ans.Refused {
				bi.refused[rf.Row()] = true
				w.refusals[string(rf.Code)]++
			}
		} else if !bytes.Equal(bi.answer, sum) {
			// A re-sent batch must get its first answer again; a
			// different one means it was applied a second time.
			w.violate("batch %s of %s answered differently on re-delivery: %s then %s", ans.Ack, d.name, bi.answer, sum)
		}
		if delivered {
			d.ackSeen[ans.Ack] = true
		}
	}
	for _, c := range ans.Changes {
		if c.Version.Node == d.node && !sreq.Resync {
			w.violate("server sent %s its own write back (%s.%s)", d.name, c.Table, c.Column)
		}
	}
}

func gunzipIf(enc string, b []byte) ([]byte, error) {
	if enc != "gzip" {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(io.LimitReader(zr, 256<<20))
}

// sameBatch reports whether a re-sent batch is the first sending. The one
// allowed difference: a beneficiary's personal value cleared to null by
// the device's erasure scrub (package domain), which removes personal
// values even from batches in flight.
func sameBatch(first, again []syncproto.Change) bool {
	if len(first) != len(again) {
		return false
	}
	for i := range first {
		a, b := first[i], again[i]
		// Either way round: the first sending seen on the wire may be
		// the scrubbed re-send, and the original arrive late.
		if isPersonal(b) && (a.Value == nil || b.Value == nil) {
			a.Value, b.Value = nil, nil
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			return false
		}
	}
	return true
}
