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
)

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

// columnPage is a list of changes in the column form, once its names
// and streams are read and before its groups are rebuilt.
type columnPage struct {
	tables  []decTable
	nodes   []string
	shapes  [][]int // table, then column indexes
	ngroups int
	fixed   [fixedStreams]byteReader
	most    int // changes the page may rebuild
}

// errTooManyCells refuses a page that would rebuild more changes than
// its message may carry, before they are all in memory.
var errTooManyCells = errors.New("too many cells")

func decodeColumns(rd *byteReader, most int) ([]Change, error) {
	p := columnPage{most: most}
	if err := p.readNames(rd); err != nil {
		return nil, err
	}
	if err := p.readShapes(rd); err != nil {
		return nil, err
	}
	if err := p.readStreams(rd); err != nil {
		return nil, err
	}
	out, err := p.rebuild()
	if err != nil {
		return nil, err
	}
	return out, p.consumed()
}

// Bounds on the names of one message. A count is checked against the
// bytes left, but an empty name costs one byte and a decoded table or
// column several dozen: without these, a request of a few megabytes
// could make the server allocate gigabytes. A schema has a few dozen
// tables and a few hundred columns; every node names the version or the
// prev of at least one change, and every shape the columns of at least
// one group, so nodes and shape columns are bounded by the changes.
const (
	maxColumnTables  = 1 << 10
	maxColumnColumns = 1 << 13 // all tables together
)

// readNames reads the tables with their columns, and the nodes.
func (p *columnPage) readNames(rd *byteReader) error {
	ntables, err := rd.count()
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	if ntables > maxColumnTables {
		return fmt.Errorf("%d tables, at most %d", ntables, maxColumnTables)
	}
	columns := 0
	p.tables = make([]decTable, ntables)
	for i := range p.tables {
		if p.tables[i].name, err = rd.text(); err != nil {
			return fmt.Errorf("table %d: %w", i, err)
		}
		ncols, err := rd.count()
		if err != nil {
			return fmt.Errorf("table %d: %w", i, err)
		}
		if columns += ncols; columns > maxColumnColumns {
			return fmt.Errorf("more than %d columns", maxColumnColumns)
		}
		p.tables[i].cols = make([]decColumn, ncols)
		for j := range p.tables[i].cols {
			if p.tables[i].cols[j].name, err = rd.text(); err != nil {
				return fmt.Errorf("table %d column %d: %w", i, j, err)
			}
		}
	}
	nnodes, err := rd.count()
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	if nnodes > 2*p.most {
		return fmt.Errorf("%d nodes for at most %d changes", nnodes, p.most)
	}
	p.nodes = make([]string, nnodes)
	for i := range p.nodes {
		if p.nodes[i], err = rd.text(); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	return nil
}

// readShapes reads the column lists groups name, each a table and
// distinct columns of it.
func (p *columnPage) readShapes(rd *byteReader) error {
	nshapes, err := rd.count()
	if err != nil {
		return fmt.Errorf("shapes: %w", err)
	}
	if nshapes > p.most {
		return fmt.Errorf("%d shapes for at most %d changes", nshapes, p.most)
	}
	columns := 0
	p.shapes = make([][]int, nshapes)
	for i := range p.shapes {
		t, err := rd.index(len(p.tables))
		if err != nil {
			return fmt.Errorf("shape %d: %w", i, err)
		}
		ncols := len(p.tables[t].cols)
		n, err := rd.count()
		if err != nil || n == 0 || n > ncols {
			return fmt.Errorf("shape %d: bad column count", i)
		}
		if columns += n; columns > p.most {
			return fmt.Errorf("shapes name more than %d columns", p.most)
		}
		s := make([]int, n+1)
		s[0] = t
		for j := 1; j <= n; j++ {
			if s[j], err = rd.index(ncols); err != nil {
				return fmt.Errorf("shape %d: %w", i, err)
			}
			for k := 1; k < j; k++ {
				if s[k] == s[j] {
					return fmt.Errorf("shape %d names a column twice", i)
				}
			}
		}
		p.shapes[i] = s
	}
	return nil
}

// readStreams reads the number of groups, the fixed streams and one
// stream per column, which must end the data.
func (p *columnPage) readStreams(rd *byteReader) error {
	var err error
	if p.ngroups, err = rd.count(); err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	for i := range p.fixed {
		b, err := rd.bytes()
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		p.fixed[i].b = b
	}
	for i := range p.tables {
		for j := range p.tables[i].cols {
			b, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("stream of %s.%s: %w", clip(p.tables[i].name), clip(p.tables[i].cols[j].name), err)
			}
			p.tables[i].cols[j].rd.b = b
		}
	}
	if !rd.done() {
		return errors.New("data after the last stream")
	}
	return nil
}

// rebuild takes each group's shape, key, hlc, node and values from the
// streams, in order.
func (p *columnPage) rebuild() ([]Change, error) {
	fixed := &p.fixed
	d := columnDecoder{heads: &fixed[streamUUIDHeads], bits: bitReader{b: fixed[streamUUIDBits].b}}
	// Sized once from the shapes: a slice grown by appending copies a
	// page's changes about twice over and leaves the garbage collector
	// the copies.
	out := make([]Change, 0, p.cells())
	var hlc int64
	for g := 0; g < p.ngroups; g++ {
		code, err := fixed[streamShapes].uvarint()
		if err != nil {
			return nil, fmt.Errorf("group %d shape: %w", g, err)
		}
		if code>>1 >= uint64(len(p.shapes)) {
			return nil, fmt.Errorf("group %d: shape %d out of range", g, code>>1)
		}
		shape, hasPrev := p.shapes[code>>1], code&1 == 1
		if len(out)+len(shape)-1 > p.most {
			return nil, errTooManyCells
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
		ni, err := fixed[streamNodes].index(len(p.nodes))
		if err != nil {
			return nil, fmt.Errorf("group %d node: %w", g, err)
		}
		t := &p.tables[shape[0]]
		ver := Version{HLC: Timestamp(hlc), Node: p.nodes[ni]}
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
			if err := p.readPrevs(out[first:], hlc); err != nil {
				return nil, fmt.Errorf("group %d prev: %w", g, err)
			}
		}
	}
	fixed[streamUUIDBits].off = len(fixed[streamUUIDBits].b)
	if !d.bits.done() {
		return nil, errors.New("uuid bits stream has data left over")
	}
	return out, nil
}

// cells counts the changes the groups' shapes announce, at most p.most;
// an error in the shapes stream stops the count, and rebuild reports it.
func (p *columnPage) cells() int {
	shapes := p.fixed[streamShapes] // a copy: rebuild reads the stream again
	n := 0
	for g := 0; g < p.ngroups && n < p.most; g++ {
		code, err := shapes.uvarint()
		if err != nil || code>>1 >= uint64(len(p.shapes)) {
			break
		}
		n += len(p.shapes[code>>1]) - 1
	}
	return min(n, p.most)
}

// readPrevs sets the prev versions of one group's changes, written
// relative to the group's hlc.
func (p *columnPage) readPrevs(group []Change, hlc int64) error {
	prevs := &p.fixed[streamPrevs]
	for k := range group {
		n, err := prevs.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if n > uint64(len(p.nodes)) {
			return fmt.Errorf("node %d out of range", n-1)
		}
		back, err := prevs.varint()
		if err != nil {
			return err
		}
		group[k].Prev = Version{HLC: Timestamp(hlc - back), Node: p.nodes[n-1]}
	}
	return nil
}

// consumed refuses a page whose streams hold more than its groups took.
func (p *columnPage) consumed() error {
	for i := range p.fixed {
		if !p.fixed[i].done() {
			return fmt.Errorf("stream %d has data left over", i)
		}
	}
	for i := range p.tables {
		for j := range p.tables[i].cols {
			if !p.tables[i].cols[j].rd.done() {
				return fmt.Errorf("stream of %s.%s has data left over", clip(p.tables[i].name), clip(p.tables[i].cols[j].name))
			}
		}
	}
	return nil
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
	s := FormatUUID(u[:])
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
