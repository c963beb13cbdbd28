package syncproto

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// columnEncoder builds the streams of one list of changes.
type columnEncoder struct {
	tables   []encTable
	tableIdx dictionary[string]
	nodes    []string
	nodeIdx  dictionary[string]
	shapes   [][]int // table, then column indexes
	shapeIdx map[string]int
	groups   int
	fixed    [fixedStreams][]byte
	uuids    dictionary[[16]byte]
	uuidTime int64 // the timestamp of the last UUIDv7 written
	bits     bitWriter
	shapeKey []byte
}

// dictionary numbers distinct keys in the order they are first met: the
// column form names tables, columns, nodes and UUIDs by these numbers.
type dictionary[K comparable] struct {
	idx map[K]int
}

func (d *dictionary[K]) index(k K) (i int, isNew bool) {
	if i, ok := d.idx[k]; ok {
		return i, false
	}
	if d.idx == nil {
		d.idx = map[K]int{}
	}
	i = len(d.idx)
	d.idx[k] = i
	return i, true
}

func (d *dictionary[K]) len() int { return len(d.idx) }

type encTable struct {
	name    string
	cols    []string
	colIdx  dictionary[string]
	values  [][]byte
	seen    []map[string]int // per column: string value → its position among the column's strings
	nstring []int
}

func (e *columnEncoder) encode(changes []Change) error {
	e.shapeIdx = map[string]int{}
	var prevHLC int64
	colsOf := make([]int, 0, 32)
	for i := 0; i < len(changes); {
		c := &changes[i]
		j := groupEnd(changes, i)
		group := changes[i:j]
		ti := e.table(c.Table)
		t := &e.tables[ti]
		colsOf = colsOf[:0]
		hasPrev := false
		for k := range group {
			colsOf = append(colsOf, t.column(group[k].Column))
			hasPrev = hasPrev || !group[k].Prev.IsZero()
		}
		code := uint64(e.shape(ti, colsOf)) << 1
		if hasPrev {
			code |= 1
		}
		e.fixed[streamShapes] = binary.AppendUvarint(e.fixed[streamShapes], code)
		e.appendKey(c.PK)
		hlc := int64(c.Version.HLC)
		e.fixed[streamHLCs] = binary.AppendVarint(e.fixed[streamHLCs], hlc-prevHLC)
		prevHLC = hlc
		e.fixed[streamNodes] = binary.AppendUvarint(e.fixed[streamNodes], uint64(e.node(c.Version.Node)))
		for k := range group {
			if err := e.appendValue(t, colsOf[k], group[k].Value); err != nil {
				return fmt.Errorf("encode %s.%s: %w", group[k].Table, group[k].Column, err)
			}
		}
		if hasPrev {
			for k := range group {
				p := group[k].Prev
				if p.IsZero() {
					e.fixed[streamPrevs] = append(e.fixed[streamPrevs], 0)
					continue
				}
				e.fixed[streamPrevs] = binary.AppendUvarint(e.fixed[streamPrevs], uint64(e.node(p.Node))+1)
				e.fixed[streamPrevs] = binary.AppendVarint(e.fixed[streamPrevs], hlc-int64(p.HLC))
			}
		}
		e.groups++
		i = j
	}
	return nil
}

func (e *columnEncoder) table(name string) int {
	i, isNew := e.tableIdx.index(name)
	if isNew {
		e.tables = append(e.tables, encTable{name: name})
	}
	return i
}

func (t *encTable) column(name string) int {
	i, isNew := t.colIdx.index(name)
	if isNew {
		t.cols = append(t.cols, name)
		t.values = append(t.values, nil)
		t.seen = append(t.seen, map[string]int{})
		t.nstring = append(t.nstring, 0)
	}
	return i
}

func (e *columnEncoder) node(name string) int {
	i, isNew := e.nodeIdx.index(name)
	if isNew {
		e.nodes = append(e.nodes, name)
	}
	return i
}

func (e *columnEncoder) shape(table int, cols []int) int {
	k := binary.AppendUvarint(e.shapeKey[:0], uint64(table))
	for _, c := range cols {
		k = binary.AppendUvarint(k, uint64(c))
	}
	e.shapeKey = k
	if i, ok := e.shapeIdx[string(k)]; ok {
		return i
	}
	s := append([]int{table}, cols...)
	e.shapes = append(e.shapes, s)
	e.shapeIdx[string(k)] = len(e.shapes) - 1
	return len(e.shapes) - 1
}

// uuidRef returns how far back u is in the page's list of UUIDs, adding
// it (and its 16 bytes to the uuids stream) when it is new.
func (e *columnEncoder) uuidRef(u [16]byte) (back int, isNew bool) {
	if i, isNew := e.uuids.index(u); !isNew {
		return e.uuids.len() - 1 - i, false
	}
	heads := &e.fixed[streamUUIDHeads]
	if !isUUIDv7(u) {
		*heads = append(*heads, 1)
		*heads = append(*heads, u[:]...)
		return 0, true
	}
	ts := uuidTime(u)
	*heads = binary.AppendUvarint(*heads, zigzag(ts-e.uuidTime)<<1)
	e.uuidTime = ts
	e.bits.write(uint64(u[6]&0x0f)<<8|uint64(u[7]), 12)
	e.bits.write(uint64(u[8]&0x3f), 6)
	e.bits.write(binary.BigEndian.Uint64(u[8:])&(1<<56-1), 56)
	return 0, true
}

func (e *columnEncoder) appendKey(pk string) {
	ks := &e.fixed[streamKeys]
	if u, ok := ParseUUID(pk); ok {
		back, isNew := e.uuidRef(u)
		if isNew {
			*ks = append(*ks, keyNewUUID)
		} else {
			*ks = binary.AppendUvarint(*ks, uint64(keyRefBase+back))
		}
		return
	}
	*ks = append(*ks, keyString)
	*ks = appendBytes(*ks, []byte(validUTF8(pk)))
}

func (e *columnEncoder) appendValue(t *encTable, col int, v any) error {
	b := t.values[col]
	defer func() { t.values[col] = b }()
	switch x := v.(type) {
	case nil:
		b = append(b, valNull)
		return nil
	case int64:
		b = append(b, valInt)
		b = binary.AppendVarint(b, x)
		return nil
	case int:
		b = append(b, valInt)
		b = binary.AppendVarint(b, int64(x))
		return nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return fmt.Errorf("unsupported value %v", x)
		}
		b = append(b, valFloat)
		var tmp [32]byte
		b = appendBytes(b, strconv.AppendFloat(tmp[:0], x, 'g', -1, 64))
		return nil
	case string:
		x = validUTF8(x)
		seen := t.seen[col]
		if i, ok := seen[x]; ok {
			b = binary.AppendUvarint(b, uint64(valRefBase+2*(t.nstring[col]-1-i)))
			return nil
		}
		seen[x] = t.nstring[col]
		t.nstring[col]++
		if u, ok := ParseUUID(x); ok {
			back, isNew := e.uuidRef(u)
			if isNew {
				b = append(b, valNewUUID)
			} else {
				b = binary.AppendUvarint(b, uint64(valRefBase+1+2*back))
			}
			return nil
		}
		b = append(b, valString)
		b = appendBytes(b, []byte(x))
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, valJSON)
	b = appendBytes(b, data)
	return nil
}

func (e *columnEncoder) size() int {
	n := 0
	for _, s := range e.fixed {
		n += len(s) + 4
	}
	for _, t := range e.tables {
		for _, v := range t.values {
			n += len(v) + 4
		}
	}
	return n
}

func (e *columnEncoder) appendTo(out []byte) []byte {
	e.fixed[streamUUIDBits] = e.bits.flush()
	out = binary.AppendUvarint(out, uint64(len(e.tables)))
	for _, t := range e.tables {
		out = appendBytes(out, []byte(validUTF8(t.name)))
		out = binary.AppendUvarint(out, uint64(len(t.cols)))
		for _, c := range t.cols {
			out = appendBytes(out, []byte(validUTF8(c)))
		}
	}
	out = binary.AppendUvarint(out, uint64(len(e.nodes)))
	for _, n := range e.nodes {
		out = appendBytes(out, []byte(validUTF8(n)))
	}
	out = binary.AppendUvarint(out, uint64(len(e.shapes)))
	for _, s := range e.shapes {
		out = binary.AppendUvarint(out, uint64(s[0]))
		out = binary.AppendUvarint(out, uint64(len(s)-1))
		for _, c := range s[1:] {
			out = binary.AppendUvarint(out, uint64(c))
		}
	}
	out = binary.AppendUvarint(out, uint64(e.groups))
	for _, s := range e.fixed {
		out = appendBytes(out, s)
	}
	for _, t := range e.tables {
		for _, v := range t.values {
			out = appendBytes(out, v)
		}
	}
	return out
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with
// U+FFFD, as the JSON form does, so both forms carry the same text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}
