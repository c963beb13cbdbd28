package replica

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// One version record per row (_rows, migration replica/00003): the row's
// table and key, its owner and pull sequence on the server, its
// tombstone, and every column's version packed in one blob. Values live
// in the domain table, or in the record's extra JSON for a deleted row
// and for columns this replica's schema does not have. See doc.go and
// docs/DESIGN.md for why.

// colClock is one column's version in a record: bit is the column's
// number in _columns, node an id in _nodes, seq the pull sequence that
// last changed it (0 on devices).
type colClock struct {
	bit  int
	hlc  int64
	node int64
	seq  int64
}

// encodeClocks packs clocks (sorted by bit) as LEB128 varints: bit, then
// hlc, node and seq each as the difference from the previous entry
// (zigzag), so that columns written together cost a few bytes each.
func encodeClocks(cs []colClock) []byte {
	b := make([]byte, 0, 4+len(cs)*6+12)
	var ph, ps int64
	for _, c := range cs {
		b = binary.AppendUvarint(b, uint64(c.bit))
		b = binary.AppendVarint(b, c.hlc-ph)
		b = binary.AppendUvarint(b, uint64(c.node))
		b = binary.AppendVarint(b, c.seq-ps)
		ph, ps = c.hlc, c.seq
	}
	return b
}

// decodeClocks reads what encodeClocks wrote, appending to dst.
func decodeClocks(dst []colClock, b []byte) ([]colClock, error) {
	var ph, ps int64
	for len(b) > 0 {
		var c colClock
		var n int
		bit, n := binary.Uvarint(b)
		if n <= 0 {
			return dst, errBadClocks
		}
		b = b[n:]
		dh, n := binary.Varint(b)
		if n <= 0 {
			return dst, errBadClocks
		}
		b = b[n:]
		node, n := binary.Uvarint(b)
		if n <= 0 {
			return dst, errBadClocks
		}
		b = b[n:]
		ds, n := binary.Varint(b)
		if n <= 0 {
			return dst, errBadClocks
		}
		b = b[n:]
		c.bit, c.hlc, c.node, c.seq = int(bit), ph+dh, int64(node), ps+ds
		ph, ps = c.hlc, c.seq
		dst = append(dst, c)
	}
	return dst, nil
}

var errBadClocks = errors.New("replica: damaged clocks blob")

// DeletedBit is the column number of the tombstone in every table.
const DeletedBit = 0

// PKArg is how a row's key is stored in _rows.pk: the 16 bytes of a
// canonical (lower-case) UUID, which every synced key is; any other key
// is kept as its text, so that it reads back exactly.
func PKArg(pk string) any {
	if u, ok := syncproto.ParseUUID(pk); ok {
		return u[:]
	}
	return pk
}

// PKText turns a _rows.pk read back into the row's key.
func PKText(v any) string {
	switch x := v.(type) {
	case []byte:
		if len(x) == 16 {
			return syncproto.FormatUUID(x)
		}
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// PKSQL is the SQL expression that turns a domain table's id column
// (text) into the form _rows.pk holds, for joins. SQLite 3.41 and later;
// PostgreSQL would write decode(replace(id, '-', ”), 'hex').
func PKSQL(col string) string { return "unhex(replace(" + col + ", '-', ''))" }

// record is one row's version record as held, and as the merge changes it.
type record struct {
	tbl     int64
	pk      string
	owner   sql.NullInt64
	seq     sql.NullInt64
	deleted bool
	clocks  []colClock
	extraJS sql.NullString
	extra   map[string]any // decoded on demand
	held    bool           // read from _rows (false: new)
	dirty   bool
}

func (r *record) clock(bit int) (colClock, bool) {
	i, ok := slices.BinarySearchFunc(r.clocks, bit, func(c colClock, b int) int { return c.bit - b })
	if !ok {
		return colClock{}, false
	}
	return r.clocks[i], true
}

func (r *record) setClock(c colClock) {
	i, ok := slices.BinarySearchFunc(r.clocks, c.bit, func(x colClock, b int) int { return x.bit - b })
	if ok {
		r.clocks[i] = c
	} else {
		r.clocks = slices.Insert(r.clocks, i, c)
	}
	r.dirty = true
}

// extraVals decodes the record's extra values.
func (r *record) extraVals() (map[string]any, error) {
	if r.extra != nil {
		return r.extra, nil
	}
	r.extra = map[string]any{}
	if !r.extraJS.Valid || r.extraJS.String == "" {
		return r.extra, nil
	}
	dec := json.NewDecoder(strings.NewReader(r.extraJS.String))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("replica: extra values of %s: %w", r.pk, err)
	}
	for k, v := range m {
		r.extra[k] = plain(v)
	}
	return r.extra, nil
}

func (r *record) setExtra(col string, v any) error {
	m, err := r.extraVals()
	if err != nil {
		return err
	}
	m[col] = v
	r.dirty = true
	return nil
}

func (r *record) dropExtra(col string) error {
	m, err := r.extraVals()
	if err != nil {
		return err
	}
	if _, ok := m[col]; ok {
		delete(m, col)
		r.dirty = true
	}
	return nil
}

// extraArg is the extra column to write: NULL when empty.
func (r *record) extraArg() (any, error) {
	if r.extra == nil {
		if r.extraJS.Valid {
			return r.extraJS.String, nil
		}
		return nil, nil
	}
	if len(r.extra) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(r.extra)
	if err != nil {
		return nil, fmt.Errorf("replica: extra values of %s: %w", r.pk, err)
	}
	return string(b), nil
}

// dict is a replica's dictionaries as one transaction sees them: table
// and column numbers, and the nodes and owners it met. Ids are local to
// the replica and never travel. They are read again for each transaction:
// an id given out in a transaction that rolled back could be given to
// another name later, so a cache across transactions would lie.
type dict struct {
	q          execQueryer
	tables     map[string]int64
	tableNames map[int64]string
	cols       map[int64]map[string]int // table id -> name -> bit
	colNames   map[int64][]string       // table id -> bit -> name
	nodes      map[string]int64
	nodeNames  map[int64]string
	owners     map[string]int64
	ownerNames map[int64]string
}

// execQueryer is what the store needs of a transaction or database.
type execQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func loadDict(ctx context.Context, q execQueryer) (*dict, error) {
	d := &dict{q: q, tables: map[string]int64{}, tableNames: map[int64]string{},
		cols: map[int64]map[string]int{}, colNames: map[int64][]string{},
		nodes: map[string]int64{}, nodeNames: map[int64]string{},
		owners: map[string]int64{}, ownerNames: map[int64]string{}}
	rows, err := q.QueryContext(ctx, "SELECT t.id, t.name, c.bit, c.name FROM _tables t JOIN _columns c ON c.tbl = t.id")
	if err != nil {
		return nil, fmt.Errorf("replica: read dictionaries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var name, col string
		var bit int
		if err := rows.Scan(&id, &name, &bit, &col); err != nil {
			return nil, fmt.Errorf("replica: read dictionaries: %w", err)
		}
		d.addTable(id, name)
		d.addColumn(id, bit, col)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replica: read dictionaries: %w", err)
	}
	return d, nil
}

func (d *dict) addTable(id int64, name string) {
	d.tables[name] = id
	d.tableNames[id] = name
	if d.cols[id] == nil {
		d.cols[id] = map[string]int{}
	}
}

func (d *dict) addColumn(tbl int64, bit int, name string) {
	d.cols[tbl][name] = bit
	names := d.colNames[tbl]
	for len(names) <= bit {
		names = append(names, "")
	}
	names[bit] = name
	d.colNames[tbl] = names
}

// table returns the id of a table, giving it one (with its tombstone as
// column 0) the first time.
func (d *dict) table(ctx context.Context, name string) (int64, error) {
	if id, ok := d.tables[name]; ok {
		return id, nil
	}
	var id int64
	fresh, err := d.insertNew(ctx, "INSERT INTO _tables (name) VALUES (?) ON CONFLICT (name) DO NOTHING RETURNING id", "SELECT id FROM _tables WHERE name = ?", name, &id)
	if err == nil && !fresh {
		// Another writer numbered it meanwhile, with its columns.
		return id, d.loadColumns(ctx, id, name)
	}
	if err == nil {
		_, err = d.q.ExecContext(ctx, "INSERT INTO _columns (tbl, bit, name) VALUES (?, ?, ?)", id, DeletedBit, syncproto.DeletedColumn)
	}
	if err != nil {
		return 0, fmt.Errorf("replica: number table %s: %w", name, err)
	}
	d.addTable(id, name)
	d.addColumn(id, DeletedBit, syncproto.DeletedColumn)
	return id, nil
}

// insertName gives name a number, or reads the one another writer gave
// it meanwhile (a server starting beside others numbers the schema too):
// the insert then does nothing and returns no row.
func (d *dict) insertName(ctx context.Context, insert, find, name string, id *int64) error {
	_, err := d.insertNew(ctx, insert, find, name, id)
	return err
}

// insertNew is insertName, and says whether this writer gave the number.
func (d *dict) insertNew(ctx context.Context, insert, find, name string, id *int64) (bool, error) {
	err := d.q.QueryRowContext(ctx, insert, name).Scan(id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, d.q.QueryRowContext(ctx, find, name).Scan(id)
	}
	return err == nil, err
}

// loadColumns reads the columns of a table another writer numbered.
func (d *dict) loadColumns(ctx context.Context, id int64, name string) error {
	rows, err := d.q.QueryContext(ctx, "SELECT bit, name FROM _columns WHERE tbl = ?", id)
	if err != nil {
		return fmt.Errorf("replica: columns of %s: %w", name, err)
	}
	defer rows.Close()
	d.addTable(id, name)
	for rows.Next() {
		var bit int
		var col string
		if err := rows.Scan(&bit, &col); err != nil {
			return fmt.Errorf("replica: columns of %s: %w", name, err)
		}
		d.addColumn(id, bit, col)
	}
	return rows.Err()
}

// maxColumns bounds a table's columns, tombstone included: a device's
// outbox records the columns a write changed as bits of one integer.
const maxColumns = 63

// column returns the bit of a column, giving it the next one the first
// time.
func (d *dict) column(ctx context.Context, tbl int64, name string) (int, error) {
	if bit, ok := d.cols[tbl][name]; ok {
		return bit, nil
	}
	bit := len(d.colNames[tbl])
	if bit >= maxColumns {
		return 0, fmt.Errorf("replica: table %s has more than %d columns", d.tableNames[tbl], maxColumns-1)
	}
	if _, err := d.q.ExecContext(ctx, "INSERT INTO _columns (tbl, bit, name) VALUES (?, ?, ?)", tbl, bit, name); err != nil {
		// Another writer numbered a column of this table meanwhile: the
		// caller's transaction fails, and is retried with the numbers
		// read again.
		return 0, fmt.Errorf("replica: number column %s.%s: %w", d.tableNames[tbl], name, err)
	}
	d.addColumn(tbl, bit, name)
	return bit, nil
}

// node returns the id of a node, giving it one the first time.
func (d *dict) node(ctx context.Context, name string) (int64, error) {
	if id, ok := d.nodes[name]; ok {
		return id, nil
	}
	var id int64
	err := d.q.QueryRowContext(ctx, "SELECT id FROM _nodes WHERE node = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = d.insertName(ctx, "INSERT INTO _nodes (node) VALUES (?) ON CONFLICT (node) DO NOTHING RETURNING id", "SELECT id FROM _nodes WHERE node = ?", name, &id)
	}
	if err != nil {
		return 0, fmt.Errorf("replica: number node %s: %w", name, err)
	}
	d.nodes[name], d.nodeNames[id] = id, name
	return id, nil
}

// owner returns the id of an owner, giving it one the first time.
func (d *dict) owner(ctx context.Context, name string) (int64, error) {
	if id, ok := d.owners[name]; ok {
		return id, nil
	}
	var id int64
	err := d.q.QueryRowContext(ctx, "SELECT id FROM _owners WHERE owner = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = d.insertName(ctx, "INSERT INTO _owners (owner) VALUES (?) ON CONFLICT (owner) DO NOTHING RETURNING id", "SELECT id FROM _owners WHERE owner = ?", name, &id)
	}
	if err != nil {
		return 0, fmt.Errorf("replica: number owner %s: %w", name, err)
	}
	d.owners[name], d.ownerNames[id] = id, name
	return id, nil
}

// knownOwners looks up the ids of owners, leaving out those never seen.
func (d *dict) knownOwners(ctx context.Context, names []string) ([]int64, error) {
	var out []int64
	for _, n := range names {
		if id, ok := d.owners[n]; ok {
			out = append(out, id)
			continue
		}
		var id int64
		err := d.q.QueryRowContext(ctx, "SELECT id FROM _owners WHERE owner = ?", n).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("replica: owner %s: %w", n, err)
		}
		d.owners[n], d.ownerNames[id] = id, n
		out = append(out, id)
	}
	return out, nil
}

// resolveNodes reads the names of the node and owner ids not known yet.
func (d *dict) resolve(ctx context.Context, nodes, owners map[int64]bool) error {
	for kind, ids := range map[string]map[int64]bool{"node": nodes, "owner": owners} {
		names, table := d.nodeNames, "_nodes"
		if kind == "owner" {
			names, table = d.ownerNames, "_owners"
		}
		var want []int64
		for id := range ids {
			if _, ok := names[id]; !ok {
				want = append(want, id)
			}
		}
		for len(want) > 0 {
			part := want[:min(len(want), 400)]
			want = want[len(part):]
			args := make([]any, len(part))
			for i, id := range part {
				args[i] = id
			}
			rows, err := d.q.QueryContext(ctx, "SELECT id, "+kind+" FROM "+table+" WHERE id IN ("+placeholders(len(part))+")", args...)
			if err != nil {
				return fmt.Errorf("replica: read %ss: %w", kind, err)
			}
			for rows.Next() {
				var id int64
				var n string
				if err := rows.Scan(&id, &n); err != nil {
					rows.Close()
					return fmt.Errorf("replica: read %ss: %w", kind, err)
				}
				names[id] = n
				if kind == "node" {
					d.nodes[n] = id
				} else {
					d.owners[n] = id
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("replica: read %ss: %w", kind, err)
			}
		}
	}
	return nil
}

func placeholders(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// version is a clock's version, with the node's name.
func (d *dict) version(c colClock) syncproto.Version {
	return syncproto.Version{HLC: syncproto.Timestamp(c.hlc), Node: d.nodeNames[c.node]}
}

const recordCols = "pk, owner, seq, deleted, clocks, extra"

// scanRecord reads one _rows row selected as recordCols (after tbl).
func scanRecord(rows *sql.Rows, tbl int64, buf []colClock) (*record, error) {
	r := &record{tbl: tbl, held: true}
	var pk any
	var clocks []byte
	var deleted int64
	if err := rows.Scan(&pk, &r.owner, &r.seq, &deleted, &clocks, &r.extraJS); err != nil {
		return nil, err
	}
	r.pk = PKText(pk)
	r.deleted = deleted == 1
	var err error
	if r.clocks, err = decodeClocks(buf, clocks); err != nil {
		return nil, fmt.Errorf("%w (row %s)", err, r.pk)
	}
	return r, nil
}

// loadRecords reads the records of some rows of one table, into out.
func loadRecords(ctx context.Context, q execQueryer, tbl int64, pks []string, out map[string]*record) error {
	const chunk = 400
	for len(pks) > 0 {
		part := pks[:min(chunk, len(pks))]
		pks = pks[len(part):]
		args := make([]any, 0, len(part)+1)
		args = append(args, tbl)
		for _, pk := range part {
			args = append(args, PKArg(pk))
		}
		rows, err := q.QueryContext(ctx, "SELECT "+recordCols+" FROM _rows WHERE tbl = ? AND pk IN ("+placeholders(len(part))+")", args...)
		if err != nil {
			return fmt.Errorf("replica: read versions: %w", err)
		}
		for rows.Next() {
			r, err := scanRecord(rows, tbl, nil)
			if err != nil {
				rows.Close()
				return fmt.Errorf("replica: read versions: %w", err)
			}
			out[r.pk] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("replica: read versions: %w", err)
		}
	}
	return nil
}

// missing says whether changes name a table, column, node or owner the
// dictionaries do not number yet (Options.Shared: those are written
// under the sequence lock). Nodes and owners found are kept.
func (d *dict) missing(ctx context.Context, changes []syncproto.Change, owners map[string]string) (bool, error) {
	seenNode := map[string]bool{}
	for i := range changes {
		c := &changes[i]
		tid, ok := d.tables[c.Table]
		if !ok {
			return true, nil
		}
		if _, ok := d.cols[tid][c.Column]; !ok {
			return true, nil
		}
		if n := c.Version.Node; !seenNode[n] {
			seenNode[n] = true
			if found, err := d.lookup(ctx, "_nodes", "node", n, d.nodes, d.nodeNames); err != nil || !found {
				return !found, err
			}
		}
		if col, owned := owners[c.Table]; owned && col == c.Column {
			if tag := ownerTag(plain(c.Value)); tag != nil {
				if found, err := d.lookup(ctx, "_owners", "owner", tag.(string), d.owners, d.ownerNames); err != nil || !found {
					return !found, err
				}
			}
		}
	}
	return false, nil
}

// lookup finds a node's or owner's number without giving one.
func (d *dict) lookup(ctx context.Context, table, col, name string, ids map[string]int64, names map[int64]string) (bool, error) {
	if _, ok := ids[name]; ok {
		return true, nil
	}
	var id int64
	err := d.q.QueryRowContext(ctx, "SELECT id FROM "+table+" WHERE "+col+" = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replica: look up %s %s: %w", col, name, err)
	}
	ids[name], names[id] = id, name
	return true, nil
}
