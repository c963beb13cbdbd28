package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The wire form of a list of changes groups consecutive changes to the
// same row at the same version, so that the table, the key and the
// version travel once per row instead of once per cell:
//
//	"rows": [["activite", "0193…", 7461934080000000, "0192…node", {"type": "individuel", "duree": 45}, {"duree": [1234, "0192…"]}]]
//
// Each group is [table, pk, hlc, node, {column: value, …}] with, when any
// cell of the group has one, a sixth element {column: prev} holding the
// prev versions [hlc, node]. The group's hlc is written as the difference
// from the previous group's (the first from zero, arithmetic wrapping
// like int64): rows travel in sequence order, which follows time, so the
// differences are short numbers where absolute readings are eighteen
// digits of little redundancy. Columns keep their order, and a group
// ends where the row, the version or a repeated column says so, so
// decoding gives back exactly the changes that were encoded, in the same
// order. Once compressed it is much smaller than one object per cell
// (BENCHMARKS.md, "Figures behind the code").
//
// Batch and SyncResponse write this form as "rows" and read it, or the
// older "changes" list of one object per cell, which stays accepted.

// appendRows appends the changes in grouped form.
func appendRows(b []byte, changes []Change) ([]byte, error) {
	b = append(b, '[')
	var prevHLC int64
	for i := 0; i < len(changes); {
		c := &changes[i]
		j := groupEnd(changes, i)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendString(b, c.Table)
		b = append(b, ',')
		b = appendString(b, c.PK)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(c.Version.HLC)-prevHLC, 10)
		prevHLC = int64(c.Version.HLC)
		b = append(b, ',')
		b = appendString(b, c.Version.Node)
		b = append(b, ",{"...)
		anyPrev := false
		for k := i; k < j; k++ {
			if k > i {
				b = append(b, ',')
			}
			b = appendString(b, changes[k].Column)
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, changes[k].Value); err != nil {
				return nil, fmt.Errorf("encode %s.%s: %w", changes[k].Table, changes[k].Column, err)
			}
			anyPrev = anyPrev || !changes[k].Prev.IsZero()
		}
		b = append(b, '}')
		if anyPrev {
			b = append(b, ",{"...)
			first := true
			for k := i; k < j; k++ {
				p := changes[k].Prev
				if p.IsZero() {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendString(b, changes[k].Column)
				b = append(b, ":["...)
				b = strconv.AppendInt(b, int64(p.HLC), 10)
				b = append(b, ',')
				b = appendString(b, p.Node)
				b = append(b, ']')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
		i = j
	}
	return append(b, ']'), nil
}

// groupEnd returns where the group that starts at changes[i] ends: it
// holds the changes that follow to the same row at the same version, up
// to a column written twice. Both wire forms (rows and columns) cut
// groups by this rule, so that both decode to the changes encoded, in
// their order.
func groupEnd(changes []Change, i int) int {
	c := &changes[i]
	j := i + 1
	for j < len(changes) {
		n := &changes[j]
		if n.Table != c.Table || n.PK != c.PK || n.Version != c.Version || hasColumn(changes[i:j], n.Column) {
			break
		}
		j++
	}
	return j
}

func hasColumn(changes []Change, col string) bool {
	for i := range changes {
		if changes[i].Column == col {
			return true
		}
	}
	return false
}

// appendValue writes the value types a change carries by hand (strings and
// integers are most of a page) and leaves the rest to encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case json.Number:
		if x != "" && json.Valid([]byte(x)) {
			return append(b, x...), nil
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}

// appendString writes s as a JSON string, as encoding/json would except
// that <, > and & are left as they are (no HTML here).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeRows reads the grouped form back into changes, in one pass over
// the bytes. Numbers stay json.Number so that Schema.Check can judge them.
func decodeRows(data []byte) ([]Change, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := expectDelim(dec, '['); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	var out []Change
	var prevHLC int64
	for gi := 0; dec.More(); gi++ {
		var err error
		if out, err = decodeGroup(dec, out, &prevHLC); err != nil {
			return nil, fmt.Errorf("row %d: %w", gi, err)
		}
		if len(out) > MaxBatchChanges+MaxPageLimit {
			return nil, errors.New("rows: too many cells")
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return out, nil
}

// decodeGroup reads one [table, pk, hlc, node, {cells}, {prevs}?] group
// and appends its changes to out. prevHLC is the previous group's hlc,
// which the group's is relative to; it is updated.
func decodeGroup(dec *json.Decoder, out []Change, prevHLC *int64) ([]Change, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var head [4]json.Token
	for i := range head {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		head[i] = tok
	}
	table, ok1 := head[0].(string)
	pk, ok2 := head[1].(string)
	num, ok3 := head[2].(json.Number)
	node, ok4 := head[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, errors.New("want [table, pk, hlc, node, cells]")
	}
	delta, err := num.Int64()
	if err != nil {
		return nil, fmt.Errorf("hlc: %w", err)
	}
	*prevHLC += delta
	ver := Version{HLC: Timestamp(*prevHLC), Node: node}
	first := len(out)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fmt.Errorf("cells: %w", err)
	}
	for dec.More() {
		col, err := memberName(dec)
		if err != nil {
			return nil, fmt.Errorf("cells: %w", err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("cells: %w", err)
		}
		out = append(out, Change{Table: table, PK: pk, Column: col, Value: v, Version: ver})
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, fmt.Errorf("cells: %w", err)
	}
	if dec.More() {
		group := out[first:]
		if err := expectDelim(dec, '{'); err != nil {
			return nil, fmt.Errorf("prevs: %w", err)
		}
		for dec.More() {
			col, err := memberName(dec)
			if err != nil {
				return nil, fmt.Errorf("prevs: %w", err)
			}
			var p Version
			if err := dec.Decode(&p); err != nil {
				return nil, fmt.Errorf("prevs: %w", err)
			}
			found := false
			for i := range group {
				if group[i].Column == col {
					group[i].Prev, found = p, true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("prev for %q, which the row does not carry", clip(col))
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return nil, fmt.Errorf("prevs: %w", err)
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, errors.New("want [table, pk, hlc, node, cells] and optional prevs, nothing more")
	}
	return out, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q", string(want))
	}
	return nil
}

func memberName(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	name, ok := tok.(string)
	if !ok {
		return "", errors.New("want a column name")
	}
	return name, nil
}

// decodeChanges reads the older list of one object per cell.
func decodeChanges(data []byte) ([]Change, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []Change
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// wireChanges is the part of a message that carries changes, in either form.
type wireChanges struct {
	Changes json.RawMessage `json:"changes"`
	Rows    json.RawMessage `json:"rows"`
}

func (w wireChanges) decode() ([]Change, error) {
	var out []Change
	if len(w.Changes) > 0 && !bytes.Equal(w.Changes, []byte("null")) {
		c, err := decodeChanges(w.Changes)
		if err != nil {
			return nil, err
		}
		out = c
	}
	if len(w.Rows) > 0 && !bytes.Equal(w.Rows, []byte("null")) {
		r, err := decodeRows(w.Rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

// MarshalJSON writes the batch with its changes grouped by row.
func (b Batch) MarshalJSON() ([]byte, error) {
	out := append([]byte(`{"id":`), appendString(nil, b.ID)...)
	out = append(out, `,"rows":`...)
	out, err := appendRows(out, b.Changes)
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// UnmarshalJSON reads a batch in either form.
func (b *Batch) UnmarshalJSON(data []byte) error {
	var w struct {
		ID *string `json:"id"`
		wireChanges
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	changes, err := w.decode()
	if err != nil {
		return err
	}
	b.ID = ""
	if w.ID != nil {
		b.ID = *w.ID
	}
	b.Changes = changes
	return nil
}

// MarshalJSON writes the answer with its changes grouped by row.
func (r SyncResponse) MarshalJSON() ([]byte, error) {
	type plain SyncResponse
	head, err := json.Marshal(struct {
		plain
		Changes []Change `json:"changes,omitempty"`
	}{plain: plain(r)})
	if err != nil {
		return nil, err
	}
	out := append(head[:len(head)-1], `,"rows":`...)
	if out, err = appendRows(out, r.Changes); err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// UnmarshalJSON reads an answer in either form.
func (r *SyncResponse) UnmarshalJSON(data []byte) error {
	head, wire, err := decodeAnswerJSON(data)
	if err != nil {
		return err
	}
	changes, err := wire.decode()
	if err != nil {
		return err
	}
	*r = head
	r.Changes = changes
	return nil
}

// decodeAnswerJSON reads an answer's fields, leaving its changes, in
// either form, undecoded. Numbers stay json.Number.
func decodeAnswerJSON(data []byte) (SyncResponse, wireChanges, error) {
	type plain SyncResponse
	// Fields at the top level hide plain's "changes", so it arrives raw.
	var w struct {
		plain
		Changes json.RawMessage `json:"changes"`
		Rows    json.RawMessage `json:"rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return SyncResponse{}, wireChanges{}, err
	}
	return SyncResponse(w.plain), wireChanges{w.Changes, w.Rows}, nil
}
