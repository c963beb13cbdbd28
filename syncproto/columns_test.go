package syncproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// drawChanges draws lists of changes that exercise every path of the
// column form: UUIDv7 keys and references that repeat within and across
// tables, other UUIDs, keys that are not UUIDs, every value type a pull
// carries, versions in any order (wrapping differences) and prevs.
func drawChanges(t *rapid.T) []Change {
	tables := []string{"activite", "accompagnement", "é\x00t"}
	uuids := []string{
		"01928a10-0000-7000-8000-000000000001",
		"01928a10-0000-7fff-bfff-ffffffffffff",
		"00000000-0000-7000-8000-000000000000",
		"ffffffff-ffff-7fff-bfff-ffffffffffff",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", // v1: travels whole
		"01928A10-0000-7000-8000-000000000001", // upper case: a string
		"01928a10-0000-7000-c000-000000000001", // wrong variant: whole
	}
	keys := append([]string{"", "p1", "not-a-uuid-but-36-characters-long!!"}, uuids...)
	cols := []string{"type", "duree", "notes", "_deleted", "a\"b", "é\n"}
	nodes := []string{"n1", "n2", "", "01928a10-0000-7000-8000-000000000009"}
	value := rapid.Custom(func(t *rapid.T) any {
		switch rapid.IntRange(0, 7).Draw(t, "kind") {
		case 0:
			return nil
		case 1:
			return rapid.String().Draw(t, "s")
		case 2:
			return rapid.Int64().Draw(t, "i")
		case 3:
			f := rapid.Float64().Draw(t, "f")
			if math.IsInf(f, 0) || math.IsNaN(f) {
				f = -0.5
			}
			return f
		case 4:
			return rapid.SampledFrom(uuids).Draw(t, "u")
		case 5:
			// A fresh UUIDv7 with random bits, so the bit packing
			// sees every pattern.
			var u [16]byte
			binary.BigEndian.PutUint64(u[:8], uint64(rapid.Int64Range(0, 1<<48-1).Draw(t, "ms"))<<16|0x7000|uint64(rapid.IntRange(0, 0xfff).Draw(t, "ra")))
			binary.BigEndian.PutUint64(u[8:], uint64(rapid.Int64().Draw(t, "rb")))
			u[8] = u[8]&0x3f | 0x80
			return FormatUUID(u[:])
		case 6:
			return rapid.SampledFrom([]string{"individuel", "collectif", "2026-10-30"}).Draw(t, "enum")
		}
		return float64(rapid.IntRange(-3, 3).Draw(t, "small"))
	})
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Change {
		c := Change{
			Table:   rapid.SampledFrom(tables).Draw(t, "tbl"),
			PK:      rapid.SampledFrom(keys).Draw(t, "pk"),
			Column:  rapid.SampledFrom(cols).Draw(t, "col"),
			Value:   value.Draw(t, "val"),
			Version: Version{HLC: Timestamp(rapid.SampledFrom([]int64{1, 2, 3, math.MaxInt64, math.MinInt64, -5}).Draw(t, "hlc")), Node: rapid.SampledFrom(nodes).Draw(t, "node")},
		}
		if rapid.Bool().Draw(t, "prev") {
			c.Prev = Version{HLC: Timestamp(rapid.SampledFrom([]int64{0, 1, math.MaxInt64, math.MinInt64}).Draw(t, "phlc")), Node: rapid.SampledFrom(nodes).Draw(t, "pnode")}
		}
		return c
	}), 0, 40).Draw(t, "changes")
}

// TestColumnsRoundTrip: any answer, once written in the column form,
// reads back exactly: the same changes in the same order with the same
// value types (int64, float64, string, nil), versions and prevs, and the
// same head.
func TestColumnsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		changes := drawChanges(t)
		in := &SyncResponse{Ack: "b1", Applied: 3, Cursor: 9, More: true, Clock: 5, Changes: changes,
			Conflicts: []ConflictReport{{Cell: Cell{"activite", "p", "duree"}, Winner: Version{2, "a"}, Loser: Version{1, "b"}}}}
		data, err := EncodeResponseColumns(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeResponseColumns(data)
		if err != nil {
			t.Fatalf("%v\n%x", err, data)
		}
		want := normaliseStrings(changes)
		if !sameChanges(out.Changes, want) {
			t.Fatalf("changes:\n got %#v\nwant %#v", out.Changes, want)
		}
		out.Changes, in.Changes = nil, nil
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("head:\n got %#v\nwant %#v", out, in)
		}
	})
}

// TestColumnsAgreeWithJSON: the device sees the same changes whichever
// form the server chose, numbers aside (JSON gives json.Number, the
// column form int64 or float64; both are what Schema.Check and the merge
// accept).
func TestColumnsAgreeWithJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := &SyncResponse{Changes: drawChanges(t), Cursor: 4}
		js, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := DecodeResponse(js)
		if err != nil {
			t.Fatal(err)
		}
		data, err := EncodeResponseColumns(in)
		if err != nil {
			t.Fatal(err)
		}
		fromColumns, err := DecodeResponseColumns(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(fromJSON.Changes) != len(fromColumns.Changes) {
			t.Fatalf("JSON gives %d changes, columns %d", len(fromJSON.Changes), len(fromColumns.Changes))
		}
		for i, j := range fromJSON.Changes {
			c := fromColumns.Changes[i]
			if n, ok := j.Value.(json.Number); ok && sameNumber(n, c.Value) {
				j.Value = c.Value
			}
			if !reflect.DeepEqual(j, c) {
				t.Fatalf("change %d: JSON gives %#v\ncolumns give %#v", i, j, c)
			}
		}
	})
}

// sameNumber reports whether a JSON number and a decoded int64 or
// float64 are the same number (JSON writes 2.0 as 2).
func sameNumber(n json.Number, v any) bool {
	switch x := v.(type) {
	case int64:
		i, err := n.Int64()
		return err == nil && i == x
	case float64:
		f, err := n.Float64()
		return err == nil && f == x
	}
	return false
}

// TestColumnsOtherValues: values a pull does not normally carry travel
// as JSON and come back as DecodeResponse would give them; values JSON
// cannot carry are refused when encoding, as json.Marshal refuses them.
func TestColumnsOtherValues(t *testing.T) {
	tests := []struct {
		in, want any
	}{
		{true, true},
		{json.Number("3.50"), json.Number("3.50")},
		{[]byte("ab"), "YWI="},
		{int(-7), int64(-7)},
		{"\xff", "\ufffd"},
	}
	for _, tt := range tests {
		data, err := EncodeResponseColumns(&SyncResponse{Changes: []Change{{Table: "t", PK: "p", Column: "c", Value: tt.in}}})
		if err != nil {
			t.Fatalf("%#v: %v", tt.in, err)
		}
		out, err := DecodeResponseColumns(data)
		if err != nil {
			t.Fatalf("%#v: %v", tt.in, err)
		}
		if got := out.Changes[0].Value; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%#v came back as %#v, want %#v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), make(chan int)} {
		if _, err := EncodeResponseColumns(&SyncResponse{Changes: []Change{{Table: "t", PK: "p", Column: "c", Value: bad}}}); err == nil {
			t.Errorf("%#v was encoded", bad)
		}
	}
}

// columnsSample is a small valid answer in the column form.
func columnsSample(t testing.TB) []byte {
	v := Version{HLC: 7461934080000000, Node: "01928a10-0000-7000-8000-00000000000a"}
	data, err := EncodeResponseColumns(&SyncResponse{Cursor: 12, More: true, Clock: 99, Changes: []Change{
		{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "type", Value: "individuel", Version: v},
		{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "duree", Value: int64(45), Version: v, Prev: Version{HLC: 3, Node: "m"}},
		{Table: "activite", PK: "01928a10-0000-7000-8000-000000000001", Column: "latitude", Value: 48.0735, Version: v},
		{Table: "accompagnement", PK: "01928a10-0000-7000-8000-000000000002", Column: "activite_id", Value: "01928a10-0000-7000-8000-000000000001", Version: v},
		{Table: "activite", PK: "p2", Column: "type", Value: "individuel", Version: v},
		{Table: "activite", PK: "p2", Column: "notes", Value: nil, Version: v},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestColumnsMalformed: every malformed answer is refused with
// malformed_body, whatever is wrong with it, and never panics.
func TestColumnsMalformed(t *testing.T) {
	good := columnsSample(t)
	if _, err := DecodeResponseColumns(good); err != nil {
		t.Fatalf("sample refused: %v", err)
	}
	// Every cut of a valid answer is refused: the streams' lengths and
	// the counts of groups must all agree.
	for n := range len(good) {
		if _, err := DecodeResponseColumns(good[:n]); CodeOf(err) != CodeMalformedBody {
			t.Errorf("cut at %d of %d: got %v, want malformed_body", n, len(good), err)
		}
	}
	head := func(h string) []byte { return appendBytes(append([]byte(nil), columnsMagic...), []byte(h)) }
	uv := func(b []byte, vs ...uint64) []byte {
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	str := func(b []byte, s string) []byte { return appendBytes(b, []byte(s)) }
	// One table "t" with column "c", one node "n", one shape [t: c], one
	// group; then the six fixed streams and the column's stream.
	page := func(keys, values []byte) []byte {
		b := head(`{"cursor":1}`)
		b = str(uv(b, 1), "t")
		b = str(uv(b, 1), "c")
		b = str(uv(b, 1), "n")
		b = uv(b, 1, 0, 1, 0, 1)
		b = appendBytes(b, []byte{0}) // shapes: shape 0, no prevs
		b = appendBytes(b, keys)
		b = appendBytes(b, []byte{2}) // hlc +1
		b = appendBytes(b, []byte{0}) // node 0
		b = appendBytes(b, nil)       // prevs
		b = appendBytes(b, nil)       // uuid heads
		b = appendBytes(b, nil)       // uuid bits
		return appendBytes(b, values)
	}
	if _, err := DecodeResponseColumns(page(str([]byte{keyString}, "p"), []byte{valInt, 2})); err != nil {
		t.Fatalf("hand-made page refused: %v", err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"JSON", []byte(`{"changes":[]}`)},
		{"other version", append([]byte{'R', 'C', 2}, good[3:]...)},
		{"data after the end", append(bytes.Clone(good), 0)},
		{"head not JSON", append(head(`{`), 0, 0, 0, 0)},
		{"head with changes", append(head(`{"changes":[]}`), make([]byte, 11)...)},
		{"head with rows", append(head(`{"rows":[]}`), make([]byte, 11)...)},
		{"count beyond the data", uv(head(`{}`), 1<<40)},
		{"varint overflow", append(head(`{}`), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"key not UTF-8", page(str([]byte{keyString}, "\xff"), []byte{valInt, 2})},
		{"key refers to no UUID", page([]byte{keyRefBase}, []byte{valInt, 2})},
		{"key wants a UUID that is missing", page([]byte{keyNewUUID}, []byte{valInt, 2})},
		{"value stream left over", page(str([]byte{keyString}, "p"), []byte{valInt, 2, 0})},
		{"value stream short", page(str([]byte{keyString}, "p"), []byte{valInt})},
		{"value not UTF-8", page(str([]byte{keyString}, "p"), str([]byte{valString}, "\xc3"))},
		{"NaN", page(str([]byte{keyString}, "p"), str([]byte{valFloat}, "NaN"))},
		{"infinity", page(str([]byte{keyString}, "p"), str([]byte{valFloat}, "1e999"))},
		{"float not a number", page(str([]byte{keyString}, "p"), str([]byte{valFloat}, "x"))},
		{"JSON value bad", page(str([]byte{keyString}, "p"), str([]byte{valJSON}, "[1,"))},
		{"JSON value and more", page(str([]byte{keyString}, "p"), str([]byte{valJSON}, "1 2"))},
		{"value refers to nothing", page(str([]byte{keyString}, "p"), []byte{valRefBase})},
		{"value refers to no UUID", page(str([]byte{keyString}, "p"), []byte{valRefBase + 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeResponseColumns(tt.data); CodeOf(err) != CodeMalformedBody {
				t.Fatalf("got %v, want malformed_body", err)
			}
		})
	}
}

// TestColumnsUUIDs: a UUIDv7 is split into timestamp and random bits and
// comes back exactly; a reference to a UUID seen in another table costs
// one byte; a UUIDv7 written whole, a timestamp beyond 48 bits or bits
// left over are refused, so each UUID has one encoding.
func TestColumnsUUIDs(t *testing.T) {
	a := "01928a10-0000-7abc-bdef-0123456789ab"
	changes := []Change{
		{Table: "activite", PK: a, Column: "type", Value: "individuel"},
		{Table: "accompagnement", PK: "01928a10-0001-7000-8000-000000000002", Column: "activite_id", Value: a},
	}
	data, err := EncodeResponseColumns(&SyncResponse{Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeResponseColumns(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Changes, changes) {
		t.Fatalf("got %#v", out.Changes)
	}
	// The timestamp travels as a difference, never as its raw bytes.
	if bytes.Count(data, []byte{0x01, 0x92, 0x8a, 0x10}) != 0 {
		t.Errorf("a UUIDv7 travelled whole:\n%x", data)
	}

	var u [16]byte
	copy(u[:], []byte{0x01, 0x92, 0x8a, 0x10, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1})
	uv := func(b []byte, vs ...uint64) []byte {
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	page := func(heads, bits []byte) []byte {
		b := appendBytes(append([]byte(nil), columnsMagic...), []byte(`{}`))
		b = appendBytes(uv(b, 1), []byte("t"))
		b = appendBytes(uv(b, 1), []byte("c"))
		b = appendBytes(uv(b, 1), []byte("n"))
		b = uv(b, 1, 0, 1, 0, 1)
		for _, s := range [][]byte{{0}, {keyNewUUID}, {0}, {0}, nil, heads, bits, {valNull}} {
			b = appendBytes(b, s)
		}
		return b
	}
	whole := append([]byte{1}, u[:]...)
	if _, err := DecodeResponseColumns(page(whole, nil)); CodeOf(err) != CodeMalformedBody {
		t.Errorf("a UUIDv7 written whole: got %v", err)
	}
	v1 := bytes.Clone(whole)
	v1[7] = 0x10 // version 1
	if _, err := DecodeResponseColumns(page(v1, nil)); err != nil {
		t.Errorf("a UUIDv1 written whole: %v", err)
	}
	if _, err := DecodeResponseColumns(page(uv(nil, zigzag(1<<48)<<1), make([]byte, 10))); CodeOf(err) != CodeMalformedBody {
		t.Errorf("timestamp beyond 48 bits: got %v", err)
	}
	if _, err := DecodeResponseColumns(page(uv(nil, zigzag(5)<<1), make([]byte, 10))); err != nil {
		t.Errorf("74 bits in 10 bytes: %v", err)
	}
	if _, err := DecodeResponseColumns(page(uv(nil, zigzag(5)<<1), make([]byte, 11))); CodeOf(err) != CodeMalformedBody {
		t.Errorf("a byte too many: got %v", err)
	}
	if _, err := DecodeResponseColumns(page(uv(nil, zigzag(5)<<1), append(make([]byte, 9), 1))); CodeOf(err) != CodeMalformedBody {
		t.Errorf("padding bits set: got %v", err)
	}
	if _, err := DecodeResponseColumns(page(uv(nil, 3), nil)); CodeOf(err) != CodeMalformedBody {
		t.Errorf("unknown head code: got %v", err)
	}
}

// TestBits: the bit packer gives back what it was given, at any widths.
func TestBits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		widths := rapid.SliceOfN(rapid.UintRange(1, 64), 0, 20).Draw(t, "widths")
		var w bitWriter
		vals := make([]uint64, len(widths))
		for i, n := range widths {
			vals[i] = rapid.Uint64().Draw(t, "v")
			if n < 64 {
				vals[i] &= 1<<n - 1
			}
			w.write(vals[i], n)
		}
		r := bitReader{b: w.flush()}
		for i, n := range widths {
			got, err := r.read(n)
			if err != nil || got != vals[i] {
				t.Fatalf("value %d (%d bits): got %x, %v, want %x", i, n, got, err, vals[i])
			}
		}
		if !r.done() {
			t.Fatal("bits left over")
		}
	})
}

func TestAcceptsColumns(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", false},
		{"*/*", false},
		{MediaTypeColumns, true},
		{"application/json, " + MediaTypeColumns, true},
		{" Application/VND.Relais.Columns ; q=0.5", true},
		{MediaTypeColumns + ";q=0", false},
		{MediaTypeColumns + "; q=0.000", false},
		{MediaTypeColumns + "x", false},
	}
	for _, tt := range tests {
		if got := AcceptsColumns(tt.accept); got != tt.want {
			t.Errorf("AcceptsColumns(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}
