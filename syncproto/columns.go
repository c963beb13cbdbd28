package syncproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MediaTypeColumns names the column-oriented binary form of an exchange
// answer. A device that can read it says so in its Accept header; any
// other device gets the JSON answer, unchanged.
const MediaTypeColumns = "application/vnd.relais.columns"

// The column-oriented form exists because a pull is mostly keys and a
// few low-cardinality values, and a general-purpose compressor reading
// row-interleaved JSON pays for every key twice (once in text, once as a
// back-reference it cannot always reach) and for every enum value as a
// fresh match. Here:
//
//   - names (tables, columns, nodes) travel once per page, and rows refer
//     to them by small index;
//   - the changes are cut into groups exactly as in the "rows" form (same
//     row, same version, no column twice), and a group's columns are named
//     by a "shape", an index into the page's list of column lists;
//   - each column's values travel together in their own stream, so
//     similar values sit next to each other;
//   - a value already seen in the same column is a back-reference to it
//     (enum values, dates, the few structures and conseillers);
//   - UUIDs in canonical form (all keys, most references) travel once
//     per page: a key or reference seen earlier in the page, in any
//     table, is a back-reference (an accompagnement names the activity
//     sent just before it). A new UUIDv7 is split into its timestamp,
//     written as the difference from the previous one's (keys are made
//     in bursts, so a few bytes), and its 74 random bits, packed without
//     the 6 fixed version and variant bits in a stream of their own,
//     where no compressor could do better; other UUIDs travel as 16
//     bytes;
//   - hlc readings are differences from the previous group's, as in rows.
//
// The result is then gzip-compressed like any answer (zstd was measured
// and gave nothing more on this form).
//
// Layout, every integer a varint (zigzag where signed):
//
//	"RC" 1                           magic and version
//	len head                         JSON of the answer without its changes
//	ntables {name ncols {column}}    names of the tables and their columns
//	nnodes {node}                    node ids of versions and prevs
//	nshapes {table ncols {column}}   column lists, as indexes
//	ngroups
//	len stream ...                   shapes, keys, hlcs, nodes, prevs, uuid
//	                                 heads, uuid bits, then one stream per
//	                                 table and column
//
// Groups are rebuilt in order by taking, for each, the next entry of the
// shape, key, hlc and node streams and one value from the stream of each
// of its columns, so decoding gives back exactly the changes encoded, in
// their order. The decoder is strict: an index out of range, a stream
// that ends early or has bytes left over, a string that is not UTF-8, a
// number that is not finite, all refuse the whole answer.

var columnsMagic = []byte{'R', 'C', 1}

// The codes of a key in the keys stream.
const (
	keyNewUUID = 0 // the next UUID of the uuid streams
	keyString  = 1 // a length and the bytes, inline
	keyRefBase = 2 // 2+d: the UUID d places back in the page's list
)

// The codes of a value in a column's stream.
const (
	valNull    = 0
	valInt     = 1 // zigzag varint
	valFloat   = 2 // length and shortest decimal text (exact for float64)
	valNewUUID = 3 // the next UUID of the uuid streams
	valString  = 4 // length and bytes
	valJSON    = 5 // length and JSON text: any other value, read as DecodeResponse would
	valRefBase = 6 // 6+2d: the column's value d places back; 7+2d: the page's UUID d places back
)

// Fixed streams, before the per-column ones.
const (
	streamShapes = iota
	streamKeys
	streamHLCs
	streamNodes
	streamPrevs
	streamUUIDHeads // per new UUID: zigzag(timestamp difference)<<1 for a UUIDv7, or 1 and 16 bytes
	streamUUIDBits  // the random bits of each new UUIDv7, 74 per UUID, packed
	fixedStreams
)

// EncodeResponseColumns writes an answer in the column-oriented form.
func EncodeResponseColumns(r *SyncResponse) ([]byte, error) {
	type plain SyncResponse
	head, err := json.Marshal(struct {
		plain
		Changes []Change `json:"changes,omitempty"`
	}{plain: plain(*r)})
	if err != nil {
		return nil, fmt.Errorf("encode answer head: %w", err)
	}
	var e columnEncoder
	if err := e.encode(r.Changes); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+e.size()+64)
	out = append(out, columnsMagic...)
	out = appendBytes(out, head)
	return e.appendTo(out), nil
}

// DecodeResponseColumns reads an answer in the column-oriented form. Its
// errors carry the code malformed_body.
func DecodeResponseColumns(data []byte) (*SyncResponse, error) {
	if !bytes.HasPrefix(data, columnsMagic) {
		return nil, Errorf(CodeMalformedBody, "answer is not in the column form (bad magic)")
	}
	rd := &byteReader{b: data[len(columnsMagic):]}
	head, err := rd.bytes()
	if err != nil {
		return nil, Errorf(CodeMalformedBody, "column answer head: %s", err)
	}
	var resp SyncResponse
	if err := decodeStrict(head, (*responseHead)(&resp)); err != nil {
		return nil, err
	}
	changes, err := decodeColumns(rd)
	if err != nil {
		return nil, Errorf(CodeMalformedBody, "column answer: %s", clip(err.Error()))
	}
	resp.Changes = changes
	return &resp, nil
}

// responseHead reads the JSON head of a column answer: every field of
// SyncResponse but the changes, which travel in columns. A head that
// carries changes anyway is refused rather than silently merged.
type responseHead SyncResponse

func (h *responseHead) UnmarshalJSON(data []byte) error {
	head, wire, err := decodeAnswerJSON(data)
	if err != nil {
		return err
	}
	if wire.Changes != nil || wire.Rows != nil {
		return errors.New("changes belong in the columns, not in the head")
	}
	*h = responseHead(head)
	return nil
}

// columnEncoder builds the streams of one list of changes.
type columnEncoder struct {
	tables    []encTable
	tableIdx  map[string]int
	nodes     []string
	nodeIdx   map[string]int
	shapes    [][]int // table, then column indexes
	shapeIdx  map[string]int
	groups    int
	fixed     [fixedStreams][]byte
	uuids     map[[16]byte]int
	uuidCount int
	uuidTime  int64 // the timestamp of the last UUIDv7 written
	bits      bitWriter
	shapeKey  []byte
}

type encTable struct {
	name    string
	cols    []string
	colIdx  map[string]int
	values  [][]byte
	seen    []map[string]int // per column: string value → its position among the column's strings
	nstring []int
}

func (e *columnEncoder) encode(changes []Change) error {
	e.tableIdx = map[string]int{}
	e.nodeIdx = map[string]int{}
	e.shapeIdx = map[string]int{}
	e.uuids = map[[16]byte]int{}
	var prevHLC int64
	colsOf := make([]int, 0, 32)
	for i := 0; i < len(changes); {
		c := &changes[i]
		j := i + 1
		for j < len(changes) {
			n := &changes[j]
			if n.Table != c.Table || n.PK != c.PK || n.Version != c.Version || hasColumn(changes[i:j], n.Column) {
				break
			}
			j++
		}
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
	if i, ok := e.tableIdx[name]; ok {
		return i
	}
	e.tables = append(e.tables, encTable{name: name, colIdx: map[string]int{}})
	e.tableIdx[name] = len(e.tables) - 1
	return len(e.tables) - 1
}

func (t *encTable) column(name string) int {
	if i, ok := t.colIdx[name]; ok {
		return i
	}
	t.cols = append(t.cols, name)
	t.values = append(t.values, nil)
	t.seen = append(t.seen, map[string]int{})
	t.nstring = append(t.nstring, 0)
	t.colIdx[name] = len(t.cols) - 1
	return len(t.cols) - 1
}

func (e *columnEncoder) node(name string) int {
	if i, ok := e.nodeIdx[name]; ok {
		return i
	}
	e.nodes = append(e.nodes, name)
	e.nodeIdx[name] = len(e.nodes) - 1
	return len(e.nodes) - 1
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
	if i, ok := e.uuids[u]; ok {
		return e.uuidCount - 1 - i, false
	}
	e.uuids[u] = e.uuidCount
	e.uuidCount++
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
	if u, ok := parseUUID(pk); ok {
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
		if u, ok := parseUUID(x); ok {
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

// parseUUID reads a UUID in canonical form (lower-case hex, 8-4-4-4-12);
// any other spelling travels as a string, so that it comes back exactly.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func formatUUID(u []byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[u[i]>>4], hex[u[i]&0xf]
		j += 2
	}
	return string(b[:])
}

// byteReader reads the varints and strings of the column form, refusing
// anything that runs past the end.
type byteReader struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of data")

func (r *byteReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errors.New("varint overflows 64 bits")
	}
	r.off += n
	return v, nil
}

// varint reads a signed varint: encoding/binary's is the zigzag form of
// an unsigned one.
func (r *byteReader) varint() (int64, error) {
	u, err := r.uvarint()
	return unzigzag(u), err
}

// count reads a number of items that each take at least one more byte,
// so that no length read from the input makes us allocate beyond it.
func (r *byteReader) count() (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("count %d exceeds the data", n)
	}
	return int(n), nil
}

func (r *byteReader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, errShort
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func (r *byteReader) text() (string, error) {
	b, err := r.bytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("text is not valid UTF-8")
	}
	return string(b), nil
}

func (r *byteReader) index(n int) (int, error) {
	v, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if v >= uint64(n) {
		return 0, fmt.Errorf("index %d out of range (%d)", v, n)
	}
	return int(v), nil
}

func (r *byteReader) done() bool { return r.off == len(r.b) }

// decColumn is one column's stream and the strings read from it so far.
type decColumn struct {
	name    string
	rd      byteReader
	strings []string
}

type decTable struct {
	name string
	cols []decColumn
}

func decodeColumns(rd *byteReader) ([]Change, error) {
	ntables, err := rd.count()
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	tables := make([]decTable, ntables)
	for i := range tables {
		if tables[i].name, err = rd.text(); err != nil {
			return nil, fmt.Errorf("table %d: %w", i, err)
		}
		ncols, err := rd.count()
		if err != nil {
			return nil, fmt.Errorf("table %d: %w", i, err)
		}
		tables[i].cols = make([]decColumn, ncols)
		for j := range tables[i].cols {
			if tables[i].cols[j].name, err = rd.text(); err != nil {
				return nil, fmt.Errorf("table %d column %d: %w", i, j, err)
			}
		}
	}
	nnodes, err := rd.count()
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	nodes := make([]string, nnodes)
	for i := range nodes {
		if nodes[i], err = rd.text(); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	nshapes, err := rd.count()
	if err != nil {
		return nil, fmt.Errorf("shapes: %w", err)
	}
	shapes := make([][]int, nshapes)
	for i := range shapes {
		t, err := rd.index(ntables)
		if err != nil {
			return nil, fmt.Errorf("shape %d: %w", i, err)
		}
		ncols := len(tables[t].cols)
		n, err := rd.count()
		if err != nil || n == 0 || n > ncols {
			return nil, fmt.Errorf("shape %d: bad column count", i)
		}
		s := make([]int, n+1)
		s[0] = t
		for j := 1; j <= n; j++ {
			if s[j], err = rd.index(ncols); err != nil {
				return nil, fmt.Errorf("shape %d: %w", i, err)
			}
			for k := 1; k < j; k++ {
				if s[k] == s[j] {
					return nil, fmt.Errorf("shape %d names a column twice", i)
				}
			}
		}
		shapes[i] = s
	}
	ngroups, err := rd.count()
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	var fixed [fixedStreams]byteReader
	for i := range fixed {
		b, err := rd.bytes()
		if err != nil {
			return nil, fmt.Errorf("stream %d: %w", i, err)
		}
		fixed[i].b = b
	}
	for i := range tables {
		for j := range tables[i].cols {
			b, err := rd.bytes()
			if err != nil {
				return nil, fmt.Errorf("stream of %s.%s: %w", clip(tables[i].name), clip(tables[i].cols[j].name), err)
			}
			tables[i].cols[j].rd.b = b
		}
	}
	if !rd.done() {
		return nil, errors.New("data after the last stream")
	}

	d := columnDecoder{heads: &fixed[streamUUIDHeads], bits: bitReader{b: fixed[streamUUIDBits].b}}
	var out []Change
	var hlc int64
	for g := 0; g < ngroups; g++ {
		code, err := fixed[streamShapes].uvarint()
		if err != nil {
			return nil, fmt.Errorf("group %d shape: %w", g, err)
		}
		if code>>1 >= uint64(len(shapes)) {
			return nil, fmt.Errorf("group %d: shape %d out of range", g, code>>1)
		}
		shape, hasPrev := shapes[code>>1], code&1 == 1
		if len(out)+len(shape)-1 > MaxBatchChanges+MaxPageLimit {
			return nil, errors.New("too many cells")
		}
		pk, err := d.key(&fixed[streamKeys])
		if err != nil {
			return nil, fmt.Errorf("group %d key: %w", g, err)
		}
		delta, err := fixed[streamHLCs].varint()
		if err != nil {
			return nil, fmt.Errorf("group %d hlc: %w", g, err)
		}
		hlc += delta // wraps like int64, as in the rows form
		ni, err := fixed[streamNodes].index(len(nodes))
		if err != nil {
			return nil, fmt.Errorf("group %d node: %w", g, err)
		}
		t := &tables[shape[0]]
		ver := Version{HLC: Timestamp(hlc), Node: nodes[ni]}
		first := len(out)
		for _, ci := range shape[1:] {
			col := &t.cols[ci]
			v, err := d.value(col)
			if err != nil {
				return nil, fmt.Errorf("group %d, %s.%s: %w", g, clip(t.name), clip(col.name), err)
			}
			out = append(out, Change{Table: t.name, PK: pk, Column: col.name, Value: v, Version: ver})
		}
		if hasPrev {
			for k := first; k < len(out); k++ {
				p, err := fixed[streamPrevs].uvarint()
				if err != nil {
					return nil, fmt.Errorf("group %d prev: %w", g, err)
				}
				if p == 0 {
					continue
				}
				if p > uint64(len(nodes)) {
					return nil, fmt.Errorf("group %d prev: node %d out of range", g, p-1)
				}
				back, err := fixed[streamPrevs].varint()
				if err != nil {
					return nil, fmt.Errorf("group %d prev: %w", g, err)
				}
				out[k].Prev = Version{HLC: Timestamp(hlc - back), Node: nodes[p-1]}
			}
		}
	}
	fixed[streamUUIDBits].off = len(fixed[streamUUIDBits].b)
	if !d.bits.done() {
		return nil, errors.New("uuid bits stream has data left over")
	}
	for i := range fixed {
		if !fixed[i].done() {
			return nil, fmt.Errorf("stream %d has data left over", i)
		}
	}
	for i := range tables {
		for j := range tables[i].cols {
			if !tables[i].cols[j].rd.done() {
				return nil, fmt.Errorf("stream of %s.%s has data left over", clip(tables[i].name), clip(tables[i].cols[j].name))
			}
		}
	}
	return out, nil
}

// columnDecoder holds the page's UUIDs as they are read.
type columnDecoder struct {
	heads    *byteReader
	bits     bitReader
	uuidTime int64
	uuids    []string
}

func (d *columnDecoder) newUUID() (string, error) {
	r := d.heads
	code, err := r.uvarint()
	if err != nil {
		return "", fmt.Errorf("uuid heads: %w", err)
	}
	var u [16]byte
	switch {
	case code == 1:
		if len(r.b)-r.off < 16 {
			return "", errors.New("uuid heads: ends early")
		}
		copy(u[:], r.b[r.off:r.off+16])
		r.off += 16
		if isUUIDv7(u) {
			// Canonical form: a UUIDv7 is always split, so that each
			// UUID has one encoding.
			return "", errors.New("uuid heads: a UUIDv7 written whole")
		}
	case code&1 == 0:
		ts := d.uuidTime + unzigzag(code>>1)
		if ts < 0 || ts >= 1<<48 {
			return "", errors.New("uuid heads: timestamp out of range")
		}
		d.uuidTime = ts
		a, err1 := d.bits.read(12)
		b, err2 := d.bits.read(6)
		c, err3 := d.bits.read(56)
		if err := errors.Join(err1, err2, err3); err != nil {
			return "", fmt.Errorf("uuid bits: %w", err)
		}
		binary.BigEndian.PutUint64(u[8:], c)
		binary.BigEndian.PutUint64(u[:8], uint64(ts)<<16|0x7000|a)
		u[8] = 0x80 | byte(b)
	default:
		return "", fmt.Errorf("uuid heads: bad code %d", code)
	}
	s := formatUUID(u[:])
	d.uuids = append(d.uuids, s)
	return s, nil
}

func (d *columnDecoder) uuidBack(back uint64) (string, error) {
	if back >= uint64(len(d.uuids)) {
		return "", fmt.Errorf("UUID reference %d out of range (%d)", back, len(d.uuids))
	}
	return d.uuids[len(d.uuids)-1-int(back)], nil
}

func (d *columnDecoder) key(r *byteReader) (string, error) {
	code, err := r.uvarint()
	if err != nil {
		return "", err
	}
	switch {
	case code == keyNewUUID:
		return d.newUUID()
	case code == keyString:
		return r.text()
	default:
		return d.uuidBack(code - keyRefBase)
	}
}

func (d *columnDecoder) value(col *decColumn) (any, error) {
	r := &col.rd
	code, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	switch code {
	case valNull:
		return nil, nil
	case valInt:
		return r.varint()
	case valFloat:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("bad number %q", clip(string(b)))
		}
		return f, nil
	case valNewUUID:
		s, err := d.newUUID()
		if err != nil {
			return nil, err
		}
		col.strings = append(col.strings, s)
		return s, nil
	case valString:
		s, err := r.text()
		if err != nil {
			return nil, err
		}
		col.strings = append(col.strings, s)
		return s, nil
	case valJSON:
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("bad JSON value: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("bad JSON value: data after it")
		}
		return v, nil
	}
	back := (code - valRefBase) / 2
	if (code-valRefBase)%2 == 1 {
		s, err := d.uuidBack(back)
		if err != nil {
			return nil, err
		}
		col.strings = append(col.strings, s)
		return s, nil
	}
	if back >= uint64(len(col.strings)) {
		return nil, fmt.Errorf("value reference %d out of range (%d)", back, len(col.strings))
	}
	return col.strings[len(col.strings)-1-int(back)], nil
}

// AcceptsColumns reports whether an Accept header lists the column form.
func AcceptsColumns(accept string) bool {
	for accept != "" {
		var item string
		item, accept, _ = strings.Cut(accept, ",")
		mediaType, params, _ := strings.Cut(item, ";")
		if !strings.EqualFold(strings.TrimSpace(mediaType), MediaTypeColumns) {
			continue
		}
		// q=0 means "not this one" (RFC 9110, 12.4.2).
		for _, p := range strings.Split(params, ";") {
			name, value, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") && strings.Trim(strings.TrimSpace(value), "0.") == "" {
				return false
			}
		}
		return true
	}
	return false
}

// isUUIDv7 reports whether u has the version (7) and variant (10) bits
// of RFC 9562's UUIDv7.
func isUUIDv7(u [16]byte) bool { return u[6]>>4 == 7 && u[8]>>6 == 2 }

// uuidTime is a UUIDv7's 48-bit Unix millisecond timestamp.
func uuidTime(u [16]byte) int64 { return int64(binary.BigEndian.Uint64(u[:8]) >> 16) }

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// bitWriter packs values of a few bits each, most significant bit first.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint // bits held in acc, fewer than 8 between writes
}

func (w *bitWriter) write(v uint64, n uint) {
	for n > 0 {
		take := min(n, 56-w.nacc)
		w.acc = w.acc<<take | (v>>(n-take))&(1<<take-1)
		w.nacc += take
		n -= take
		for w.nacc >= 8 {
			w.out = append(w.out, byte(w.acc>>(w.nacc-8)))
			w.nacc -= 8
		}
		w.acc &= 1<<w.nacc - 1
	}
}

// flush pads the last byte with zero bits and returns the bytes.
func (w *bitWriter) flush() []byte {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.nacc)))
		w.acc, w.nacc = 0, 0
	}
	return w.out
}

// bitReader reads what bitWriter wrote.
type bitReader struct {
	b   []byte
	off int // in bits
}

func (r *bitReader) read(n uint) (uint64, error) {
	if r.off+int(n) > 8*len(r.b) {
		return 0, errShort
	}
	var v uint64
	for n > 0 {
		bit := 8 - uint(r.off%8)
		take := min(n, bit)
		cur := uint64(r.b[r.off/8]) >> (bit - take) & (1<<take - 1)
		v = v<<take | cur
		r.off += int(take)
		n -= take
	}
	return v, nil
}

// done reports whether only the zero padding of the last byte is left.
func (r *bitReader) done() bool {
	if (r.off+7)/8 != len(r.b) {
		return false
	}
	if r.off%8 == 0 {
		return true
	}
	return r.b[len(r.b)-1]&(1<<(8-uint(r.off%8))-1) == 0
}
