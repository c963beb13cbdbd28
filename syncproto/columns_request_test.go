package syncproto

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

// drawRequest draws a valid request: any head, and a batch of any
// changes or none.
func drawRequest(t *rapid.T) *SyncRequest {
	r := &SyncRequest{
		Cursor:        rapid.Int64Min(0).Draw(t, "cursor"),
		Limit:         rapid.IntRange(0, MaxPageLimit).Draw(t, "limit"),
		Clock:         Timestamp(rapid.Int64().Draw(t, "clock")),
		Pending:       rapid.IntRange(0, 1<<20).Draw(t, "pending"),
		AppVersion:    rapid.SampledFrom([]string{"", "relais-go/1.4", "tablette « A »"}).Draw(t, "app"),
		SchemaVersion: rapid.Int64Range(0, 100).Draw(t, "schema"),
		Resync:        rapid.Bool().Draw(t, "resync"),
		RefuseRows:    rapid.Bool().Draw(t, "refuse"),
	}
	if rapid.Bool().Draw(t, "push") {
		r.Push = &Batch{ID: rapid.StringMatching(`[0-9a-f-]{1,64}`).Draw(t, "id"), Changes: drawChanges(t)}
	}
	return r
}

// TestRequestColumnsRoundTrip: any request, once written in the column
// form, reads back exactly: the same head, the same batch id, and the
// same changes in the same order with the same value types, versions and
// prevs.
func TestRequestColumnsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := drawRequest(t)
		data, err := EncodeRequestColumns(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeRequestColumns(data)
		if err != nil {
			t.Fatalf("%v\n%x", err, data)
		}
		if (in.Push == nil) != (out.Push == nil) {
			t.Fatalf("push %v became %v", in.Push, out.Push)
		}
		if in.Push != nil {
			if out.Push.ID != in.Push.ID || !sameChanges(out.Push.Changes, normaliseStrings(in.Push.Changes)) {
				t.Fatalf("batch:\n got %#v\nwant %#v", out.Push, in.Push)
			}
		}
		inHead, outHead := *in, *out
		inHead.Push, outHead.Push = nil, nil
		if !reflect.DeepEqual(inHead, outHead) {
			t.Fatalf("head:\n got %#v\nwant %#v", outHead, inHead)
		}
	})
}

// TestRequestColumnsAgreeWithJSON: the server judges a batch the same
// whichever form the device chose. For every change, Schema.Check gives
// the same verdict and the same normalised value from both decoders
// (JSON gives json.Number, the column form int64 or float64: the check
// turns both into the column's type).
func TestRequestColumnsAgreeWithJSON(t *testing.T) {
	s := &Schema{Tables: map[string]*Table{
		"activite":       {Name: "activite", Columns: map[string]ColumnType{"type": TypeText, "duree": TypeInteger, "notes": TypeReal, "a\"b": TypeText, "é\n": TypeInteger}},
		"accompagnement": {Name: "accompagnement", Columns: map[string]ColumnType{"type": TypeInteger, "duree": TypeReal, "notes": TypeText}},
	}}
	rapid.Check(t, func(t *rapid.T) {
		in := drawRequest(t)
		js, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := DecodeRequest(js)
		if err != nil {
			t.Fatal(err)
		}
		data, err := EncodeRequestColumns(in)
		if err != nil {
			t.Fatal(err)
		}
		fromColumns, err := DecodeRequestColumns(data)
		if err != nil {
			t.Fatal(err)
		}
		if in.Push == nil {
			return
		}
		a, b := fromJSON.Push.Changes, fromColumns.Push.Changes
		if len(a) != len(b) {
			t.Fatalf("JSON gives %d changes, columns %d", len(a), len(b))
		}
		for i := range a {
			errJ, errC := s.Check(&a[i]), s.Check(&b[i])
			if CodeOf(errJ) != CodeOf(errC) {
				t.Fatalf("change %d (%#v): JSON judged %v, columns %v", i, in.Push.Changes[i], errJ, errC)
			}
			if errJ == nil && !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("change %d: JSON gives %#v\ncolumns give %#v", i, a[i], b[i])
			}
		}
	})
}

// requestSample is a small valid request in the column form.
func requestSample(t testing.TB) []byte {
	v := Version{HLC: 7461934080000000, Node: "01928a10-0000-7000-8000-00000000000a"}
	data, err := EncodeRequestColumns(&SyncRequest{Cursor: 12, Clock: 99, Pending: 3, RefuseRows: true, AppVersion: "relais-go",
		Push: &Batch{ID: "01928a10-0000-7000-8000-0000000000b1", Changes: []Change{
			{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "type", Value: "individuel", Version: v},
			{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "duree", Value: int64(45), Version: v, Prev: Version{HLC: 3, Node: "m"}},
			{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "latitude", Value: 48.0735, Version: v},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRequestColumnsRefused: a request in the column form gets the
// checks a JSON request gets, with the same codes, and whatever is wrong
// with its bytes is malformed_body.
func TestRequestColumnsRefused(t *testing.T) {
	good := requestSample(t)
	if req, err := DecodeRequestColumns(good); err != nil || req.Push == nil || len(req.Push.Changes) != 3 {
		t.Fatalf("sample: %+v, %v", req, err)
	}
	for n := range len(good) {
		if _, err := DecodeRequestColumns(good[:n]); CodeOf(err) != CodeMalformedBody {
			t.Errorf("cut at %d of %d: got %v, want malformed_body", n, len(good), err)
		}
	}
	encode := func(r *SyncRequest) []byte {
		data, err := EncodeRequestColumns(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cell := Change{Table: "activite", PK: "p", Column: "duree", Value: int64(1), Version: Version{HLC: 1, Node: "n"}}
	many := make([]Change, MaxBatchChanges+1)
	for i := range many {
		many[i] = cell
		many[i].Version.HLC = Timestamp(i + 1)
	}
	head := func(h string) []byte {
		// A head, then an empty list of changes: no tables, nodes,
		// shapes or groups, and the empty fixed streams.
		b := appendBytes(append([]byte(nil), requestForm.magic...), []byte(h))
		b = append(b, 0, 0, 0, 0)
		return append(b, make([]byte, fixedStreams)...)
	}
	if req, err := DecodeRequestColumns(head(`{"cursor":1,"push":{"id":"b"}}`)); err != nil || req.Push.ID != "b" || req.Cursor != 1 {
		t.Fatalf("hand-made request: %+v, %v", req, err)
	}
	answer, err := EncodeResponseColumns(&SyncResponse{Cursor: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		code Code
	}{
		{"JSON", []byte(`{"cursor":0,"clock":0}`), CodeMalformedBody},
		{"an answer", answer, CodeMalformedBody},
		{"other version", append([]byte{'R', 'Q', 2}, good[3:]...), CodeMalformedBody},
		{"data after the end", append(append([]byte(nil), good...), 0), CodeMalformedBody},
		{"head not JSON", head(`{`), CodeMalformedBody},
		{"head with data after it", head(`{} {}`), CodeMalformedBody},
		{"batch with changes in the head", head(`{"push":{"id":"b","changes":[]}}`), CodeMalformedBody},
		{"batch with rows in the head", head(`{"push":{"id":"b","rows":[]}}`), CodeMalformedBody},
		{"changes without a batch", replaceHead(t, encode(&SyncRequest{Push: &Batch{ID: "b", Changes: []Change{cell}}}), `{"cursor":0}`), CodeMalformedBody},
		{"batch without id", head(`{"push":{}}`), CodeMalformedBody},
		{"batch id too long", encode(&SyncRequest{Push: &Batch{ID: string(make([]byte, 65))}}), CodeMalformedBody},
		{"negative cursor", encode(&SyncRequest{Cursor: -1}), CodeMalformedBody},
		{"negative limit", encode(&SyncRequest{Limit: -1}), CodeMalformedBody},
		{"app not printable", encode(&SyncRequest{AppVersion: "a\nb"}), CodeMalformedBody},
		{"too many changes", encode(&SyncRequest{Push: &Batch{ID: "b", Changes: many}}), CodeTooManyChanges},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRequestColumns(tt.data); CodeOf(err) != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
		})
	}
}

// replaceHead gives a request in the column form another JSON head.
func replaceHead(t *testing.T, data []byte, head string) []byte {
	t.Helper()
	rd := &byteReader{b: data[len(requestForm.magic):]}
	if _, err := rd.bytes(); err != nil {
		t.Fatal(err)
	}
	out := appendBytes(append([]byte(nil), requestForm.magic...), []byte(head))
	return append(out, rd.b[rd.off:]...)
}

// FuzzDecodeRequestColumns: the column form of a request, read on the
// server from the network. Whatever the bytes: a request that passes
// the checks DecodeRequest makes, or a malformed_body or
// too_many_changes error, never a panic; an accepted request, written
// again, reads back to the same request; and the schema gate takes
// whatever it holds.
func FuzzDecodeRequestColumns(f *testing.F) {
	f.Add(requestSample(f))
	f.Add([]byte("RQ\x01\x0f{\"push\":{\"id\":\"b\"}}\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("RQ\x01"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequestColumns(body)
		if err != nil {
			if c := CodeOf(err); c != CodeMalformedBody && c != CodeTooManyChanges {
				t.Fatalf("error without malformed_body or too_many_changes: %v", err)
			}
			return
		}
		if err := req.validate(); err != nil {
			t.Fatalf("accepted a request DecodeRequest would refuse: %v", err)
		}
		again, err := EncodeRequestColumns(req)
		if err != nil {
			t.Fatalf("accepted a request it cannot encode: %v", err)
		}
		back, err := DecodeRequestColumns(again)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if req.Push != nil {
			if back.Push == nil || back.Push.ID != req.Push.ID || !sameChanges(back.Push.Changes, req.Push.Changes) {
				t.Fatalf("round trip changed the batch:\n%#v\n%#v", req.Push, back.Push)
			}
			s := testSchema()
			for i := range req.Push.Changes {
				_ = s.Check(&req.Push.Changes[i])
			}
		}
	})
}

// TestColumnsNamesBounded: counts of tables, columns, nodes and shapes
// that the bytes could hold (an empty name is one byte) but no message
// needs are refused before anything is allocated for them: decoded, a
// few megabytes of such counts would take gigabytes. Requests (on the
// server) and answers (on devices) alike.
func TestColumnsNamesBounded(t *testing.T) {
	const n = 1 << 20
	uv := func(b []byte, vs ...uint64) []byte {
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	after := func(magic []byte) []byte { return appendBytes(append([]byte(nil), magic...), []byte(`{}`)) }
	tests := []struct {
		name string
		body func(magic []byte) []byte
	}{
		{"tables", func(m []byte) []byte { return append(uv(after(m), n), make([]byte, 2*n)...) }},
		{"columns", func(m []byte) []byte {
			return append(appendBytes(uv(after(m), 1), []byte("t")), append(uv(nil, n), make([]byte, n)...)...)
		}},
		{"nodes", func(m []byte) []byte { return append(uv(after(m), 0, n), make([]byte, n)...) }},
		{"shapes", func(m []byte) []byte {
			b := appendBytes(uv(after(m), 1), []byte("t"))
			b = appendBytes(uv(b, 1), []byte("c"))
			b = uv(b, 0, n)
			for range n {
				b = append(b, 0, 1, 0)
			}
			return b
		}},
	}
	for _, tt := range tests {
		for _, form := range []struct {
			magic  []byte
			decode func([]byte) error
		}{
			{requestForm.magic, func(b []byte) error { _, err := DecodeRequestColumns(b); return err }},
			{answerForm.magic, func(b []byte) error { _, err := DecodeResponseColumns(b); return err }},
		} {
			t.Run(tt.name+" "+string(form.magic[:2]), func(t *testing.T) {
				body := tt.body(form.magic)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				err := form.decode(body)
				runtime.ReadMemStats(&after)
				if CodeOf(err) != CodeMalformedBody {
					t.Fatalf("got %v, want malformed_body", err)
				}
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
					t.Fatalf("refusing %d bytes allocated %d bytes", len(body), alloc)
				}
			})
		}
	}
}
