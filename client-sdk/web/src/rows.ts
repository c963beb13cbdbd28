// One version record per row (_rows), as package replica keeps it
// (replica/rows.go, merge.go, held.go, upgrade.go): the row's table and
// key, its tombstone, every column's version packed in one blob, and in
// extra the values of a deleted row and of columns this replica does not
// know. Values live once, in the domain table. This file mirrors the Go
// code function by function (names given), down to the bytes it writes:
// the shared vectors (client-sdk/device/testdata/apply_vectors.json,
// replica/testdata/clocks_vectors.json) hold the two to the same _rows.
import { Db, quoteIdent } from './db.js';
import { toTimestamp } from './hlc.js';
import { parse } from './json.js';
import { DELETED_COLUMN, type Change } from './proto.js';
import { compare, compareNodes, decide, ZERO, type Version } from './version.js';

/** Synced tables: table → column → type (id excluded), as served. */
export type Tables = Record<string, Record<string, string>>;

/** The column number of the tombstone in every table. */
export const DELETED_BIT = 0;

/** A table's columns are bits of one integer in the outbox (Go: maxColumns). */
const MAX_COLUMNS = 63;

/** One column's version in a record (Go: colClock). node is an id in
 *  _nodes; seq is 0 on devices. */
export interface ColClock {
  bit: number;
  hlc: bigint;
  node: number;
  seq: bigint;
}

// ---- clocks blob (Go: encodeClocks, decodeClocks) ----

function putUvarint(out: number[], v: number | bigint): void {
  if (typeof v === 'number' && v < 0x80) {
    out.push(v);
    return;
  }
  let x = BigInt(v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

/** binary.AppendVarint: zigzag over int64, then uvarint. */
function putVarint(out: number[], v: bigint): void {
  if (v === 0n) {
    out.push(0);
    return;
  }
  const x = BigInt.asIntN(64, v);
  putUvarint(out, BigInt.asUintN(64, x >= 0n ? x << 1n : ((-x) << 1n) - 1n));
}

/** Packs clocks (sorted by bit): per column its bit, then hlc, node and
 *  seq, hlc and seq as differences from the previous column's. */
export function encodeClocks(cs: readonly ColClock[]): Uint8Array {
  const out: number[] = [];
  let ph = 0n;
  let ps = 0n;
  for (const c of cs) {
    putUvarint(out, c.bit);
    putVarint(out, c.hlc - ph);
    putUvarint(out, c.node);
    putVarint(out, c.seq - ps);
    ph = c.hlc;
    ps = c.seq;
  }
  return Uint8Array.from(out);
}

export class BadClocksError extends Error {
  constructor() {
    super('replica: damaged clocks blob');
  }
}

/** Reads what encodeClocks wrote; refuses what binary.Uvarint refuses
 *  (a truncated varint, one past 64 bits). */
export function decodeClocks(b: Uint8Array): ColClock[] {
  const out: ColClock[] = [];
  let i = 0;
  // binary.Uvarint: a number for one byte (the common case), else bigint.
  const uvarint = (): bigint | number => {
    if (i < b.length && b[i] < 0x80) return b[i++];
    let x = 0n;
    let s = 0n;
    for (let k = 0; ; k++) {
      if (k === 10 || i >= b.length) throw new BadClocksError();
      const c = b[i++];
      if (c < 0x80) {
        if (k === 9 && c > 1) throw new BadClocksError();
        return x | (BigInt(c) << s);
      }
      x |= BigInt(c & 0x7f) << s;
      s += 7n;
    }
  };
  const varint = (): bigint => {
    const u = uvarint();
    if (typeof u === 'number') return u & 1 ? BigInt(-(u >>> 1) - 1) : BigInt(u >>> 1);
    const x = u >> 1n;
    return u & 1n ? BigInt.asIntN(64, ~x) : BigInt.asIntN(64, x);
  };
  // Numbers past 2^53 no dictionary gives (Go would read them, and find
  // no name): refused, rather than rounded.
  const small = (v: bigint | number): number => {
    if (typeof v === 'number') return v;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BadClocksError();
    return Number(v);
  };
  let ph = 0n;
  let ps = 0n;
  while (i < b.length) {
    const bit = small(uvarint());
    const dh = varint();
    const node = small(uvarint());
    const ds = varint();
    const hlc = BigInt.asIntN(64, ph + dh);
    const seq = BigInt.asIntN(64, ps + ds);
    out.push({ bit, hlc, node, seq });
    ph = hlc;
    ps = seq;
  }
  return out;
}

// ---- keys (Go: PKArg, PKText, PKSQL) ----

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX = '0123456789abcdef';
const utf8d = new TextDecoder();

/** How a key is stored in _rows.pk: the 16 bytes of a canonical
 *  lower-case UUID, any other key as its text. */
export function pkArg(pk: string): Uint8Array | string {
  if (pk.length !== 36 || !UUID.test(pk)) return pk;
  const u = new Uint8Array(16);
  for (let i = 0, j = 0; i < 16; i++, j += 2) {
    if (j === 8 || j === 13 || j === 18 || j === 23) j++;
    u[i] = (nibble(pk.charCodeAt(j)) << 4) | nibble(pk.charCodeAt(j + 1));
  }
  return u;
}

/** A lower-case hexadecimal digit's value (the key was checked). */
function nibble(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57;
}

/** A _rows.pk read back, as the row's key. */
export function pkText(v: unknown): string {
  if (v instanceof Uint8Array) {
    if (v.length !== 16) return utf8d.decode(v);
    let s = '';
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
      s += HEX[v[i] >> 4] + HEX[v[i] & 15];
    }
    return s;
  }
  return String(v);
}

// ---- values in extra, written as Go's encoding/json writes them ----

/** A value read from SQLite as a change carries it (Go: sqlValue). */
export function sqlValue(v: unknown): unknown {
  return v instanceof Uint8Array ? utf8d.decode(v) : v;
}

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** json.Marshal of what extra holds: keys in byte order, HTML
 *  characters escaped, numbers as Go writes int64 and float64. */
export function goJSON(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) throw new Error('json: unsupported value: ' + String(v));
      return String(v);
    case 'string':
      return goString(v);
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (v instanceof Uint8Array) return goString(utf8d.decode(v));
  if (Array.isArray(v)) return '[' + v.map(goJSON).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort(compareNodes);
  return '{' + keys.map((k) => goString(k) + ':' + goJSON(o[k])).join(',') + '}';
}

function goJSONMap(m: Map<string, unknown>): string {
  const keys = [...m.keys()].sort(compareNodes);
  return '{' + keys.map((k) => goString(k) + ':' + goJSON(m.get(k))).join(',') + '}';
}

// ---- records ----

/** One row's version record, as held and as the merge changes it. */
export interface Rec {
  tbl: number;
  pk: string;
  owner: unknown;
  seq: unknown;
  deleted: boolean;
  clocks: ColClock[];
  extraJS: string | null;
  extra: Map<string, unknown> | null; // decoded on demand
  held: boolean; // read from _rows
  dirty: boolean;
}

function newRec(tbl: number, pk: string): Rec {
  return { tbl, pk, owner: null, seq: null, deleted: false, clocks: [], extraJS: null, extra: null, held: false, dirty: false };
}

function clockIndex(r: Rec, bit: number): number {
  let lo = 0;
  let hi = r.clocks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (r.clocks[mid].bit < bit) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function recClock(r: Rec, bit: number): ColClock | undefined {
  const i = clockIndex(r, bit);
  return i < r.clocks.length && r.clocks[i].bit === bit ? r.clocks[i] : undefined;
}

function setClock(r: Rec, c: ColClock): void {
  const i = clockIndex(r, c.bit);
  if (i < r.clocks.length && r.clocks[i].bit === c.bit) r.clocks[i] = c;
  else r.clocks.splice(i, 0, c);
  r.dirty = true;
}

/** Go: record.extraVals. Top-level numbers as Go's plain() reads them. */
function extraVals(r: Rec): Map<string, unknown> {
  if (r.extra) return r.extra;
  r.extra = new Map();
  if (r.extraJS === null || r.extraJS === '') return r.extra;
  const m = parse(r.extraJS);
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error(`replica: extra values of ${r.pk}: not an object`);
  for (const [k, v] of Object.entries(m)) r.extra.set(k, v);
  return r.extra;
}

function setExtra(r: Rec, col: string, v: unknown): void {
  extraVals(r).set(col, v);
  r.dirty = true;
}

/** Go: record.extraArg: the extra column to write, NULL when empty. */
function extraArg(r: Rec): string | null {
  if (!r.extra) return r.extraJS;
  if (r.extra.size === 0) return null;
  return goJSONMap(r.extra);
}

function scanRecord(row: Record<string, unknown>, tbl: number): Rec {
  const clocks = row.clocks instanceof Uint8Array ? row.clocks : new Uint8Array();
  const r: Rec = {
    tbl,
    pk: pkText(row.pk),
    owner: row.owner ?? null,
    seq: row.seq ?? null,
    deleted: Number(row.deleted) === 1,
    clocks: [],
    extraJS: (row.extra as string | null) ?? null,
    extra: null,
    held: true,
    dirty: false,
  };
  try {
    r.clocks = decodeClocks(clocks);
  } catch (e) {
    throw new Error(`${(e as Error).message} (row ${r.pk})`);
  }
  return r;
}

function placeholders(n: number): string {
  return n <= 0 ? 'NULL' : '?, '.repeat(n - 1) + '?';
}

/** Go: loadRecords. */
export function loadRecords(db: Db, tbl: number, pks: string[], out: Map<string, Rec>): void {
  for (let i = 0; i < pks.length; i += 400) {
    const part = pks.slice(i, i + 400);
    const rows = db.all(`SELECT pk, owner, seq, deleted, clocks, extra FROM _rows WHERE tbl = ? AND pk IN (${placeholders(part.length)})`, [
      tbl,
      ...part.map(pkArg),
    ]);
    for (const row of rows) {
      const r = scanRecord(row, tbl);
      out.set(r.pk, r);
    }
  }
}

// ---- dictionaries (Go: dict) ----

/** The replica's dictionaries as one transaction sees them: read again
 *  by each (a number given out in a transaction that rolled back may
 *  go to another name later). */
export class Dict {
  readonly tables = new Map<string, number>();
  readonly tableNames = new Map<number, string>();
  readonly cols = new Map<number, Map<string, number>>();
  readonly colNames = new Map<number, string[]>();
  readonly nodes = new Map<string, number>();
  readonly nodeNames = new Map<number, string>();

  private constructor(private db: Db) {}

  static load(db: Db): Dict {
    const d = new Dict(db);
    for (const r of db.all('SELECT t.id, t.name, c.bit, c.name AS col FROM _tables t JOIN _columns c ON c.tbl = t.id')) {
      const id = Number(r.id);
      d.addTable(id, r.name as string);
      d.addColumn(id, Number(r.bit), r.col as string);
    }
    return d;
  }

  private addTable(id: number, name: string) {
    this.tables.set(name, id);
    this.tableNames.set(id, name);
    if (!this.cols.has(id)) this.cols.set(id, new Map());
    if (!this.colNames.has(id)) this.colNames.set(id, []);
  }

  private addColumn(tbl: number, bit: number, name: string) {
    this.cols.get(tbl)!.set(name, bit);
    const names = this.colNames.get(tbl)!;
    while (names.length <= bit) names.push('');
    names[bit] = name;
  }

  /** The number of a table, given (with its tombstone as column 0) the first time. */
  table(name: string): number {
    const have = this.tables.get(name);
    if (have !== undefined) return have;
    const id = Number(this.db.value('INSERT INTO _tables (name) VALUES (?) RETURNING id', [name]));
    this.db.run('INSERT INTO _columns (tbl, bit, name) VALUES (?, ?, ?)', [id, DELETED_BIT, DELETED_COLUMN]);
    this.addTable(id, name);
    this.addColumn(id, DELETED_BIT, DELETED_COLUMN);
    return id;
  }

  /** The bit of a column, given the next one the first time. */
  column(tbl: number, name: string): number {
    const have = this.cols.get(tbl)!.get(name);
    if (have !== undefined) return have;
    const bit = this.colNames.get(tbl)!.length;
    if (bit >= MAX_COLUMNS) throw new Error(`replica: table ${this.tableNames.get(tbl)} has more than ${MAX_COLUMNS - 1} columns`);
    this.db.run('INSERT INTO _columns (tbl, bit, name) VALUES (?, ?, ?)', [tbl, bit, name]);
    this.addColumn(tbl, bit, name);
    return bit;
  }

  /** The number of a node, given the first time. */
  node(name: string): number {
    const have = this.nodes.get(name);
    if (have !== undefined) return have;
    let id = this.db.value('SELECT id FROM _nodes WHERE node = ?', [name]);
    if (id === undefined) id = this.db.value('INSERT INTO _nodes (node) VALUES (?) RETURNING id', [name]);
    const n = Number(id);
    this.nodes.set(name, n);
    this.nodeNames.set(n, name);
    return n;
  }

  /** Reads the names of node ids not known yet. */
  resolve(ids: Iterable<number>): void {
    const want = [...new Set(ids)].filter((id) => !this.nodeNames.has(id));
    for (let i = 0; i < want.length; i += 400) {
      const part = want.slice(i, i + 400);
      for (const r of this.db.all(`SELECT id, node FROM _nodes WHERE id IN (${placeholders(part.length)})`, part)) {
        this.nodeNames.set(Number(r.id), r.node as string);
        this.nodes.set(r.node as string, Number(r.id));
      }
    }
  }

  version(c: ColClock): Version {
    return { hlc: c.hlc, node: this.nodeNames.get(c.node) ?? '' };
  }
}

/** Go: replica.Dictionary: every synced table and column numbered, in
 *  name order, before any trigger names them. */
export function dictionary(db: Db, tables: Tables): void {
  const d = Dict.load(db);
  for (const name of Object.keys(tables).sort(compareNodes)) {
    const tid = d.table(name);
    for (const col of Object.keys(tables[name]).sort(compareNodes)) d.column(tid, col);
  }
}

// ---- writers ----

const RECORD_CHUNKS = [64, 8, 1];
const ROW_CHUNKS = [32, 8, 1];
const PUT_RECORD = `INSERT INTO _rows (tbl, pk, owner, seq, deleted, hlc, clocks, extra) VALUES #
  ON CONFLICT (tbl, pk) DO UPDATE SET owner = excluded.owner, seq = excluded.seq, deleted = excluded.deleted, hlc = excluded.hlc, clocks = excluded.clocks, extra = excluded.extra`;

function chunkFor(sizes: number[], n: number): number {
  for (const s of sizes) if (s <= n) return s;
  return 1;
}

function tuples(n: number, width: number): string {
  const one = '(' + placeholders(width) + ')';
  return Array(n).fill(one).join(', ');
}

/** Go: recordWriter: records written a chunk at a time. */
class RecordWriter {
  private args: unknown[] = [];
  private n = 0;
  constructor(private db: Db) {}

  add(r: Rec): void {
    let newest = 0n;
    for (const c of r.clocks) if (c.hlc > newest) newest = c.hlc;
    this.args.push(r.tbl, pkArg(r.pk), r.owner, r.seq, r.deleted ? 1 : 0, newest, encodeClocks(r.clocks), extraArg(r));
    if (++this.n >= RECORD_CHUNKS[0]) this.flush();
  }

  flush(): void {
    while (this.n > 0) {
      const n = chunkFor(RECORD_CHUNKS, this.n);
      this.db.run(PUT_RECORD.replace('#', tuples(n, 8)), this.args.splice(0, n * 8));
      this.n -= n;
    }
  }
}

function upsertSQL(table: string, names: string[], rows = 1): string {
  const q = quoteIdent;
  return (
    `INSERT INTO ${q(table)} (id${names.map((n) => ', ' + q(n)).join('')}) VALUES ${tuples(rows, names.length + 1)} ON CONFLICT (id) DO ` +
    (names.length === 0 ? 'NOTHING' : 'UPDATE SET ' + names.map((n) => `${q(n)} = excluded.${q(n)}`).join(', '))
  );
}

/** Writes some columns of one row (Go: upsert; names sorted). */
function upsert(db: Db, table: string, pk: string, cols: Map<string, unknown>): void {
  const names = [...cols.keys()].filter((n) => n !== DELETED_COLUMN).sort(compareNodes);
  db.run(upsertSQL(table, names), [pk, ...names.map((n) => cols.get(n))]);
}

/** Go: rowWriter: rows new to the replica, every column of the table,
 *  written per table in chunks. */
class RowWriter {
  private bufs = new Map<string, { names: string[]; args: unknown[]; n: number }>();
  constructor(private db: Db, private tables: Tables) {}

  add(table: string, pk: string, cols: Map<string, unknown>): void {
    let b = this.bufs.get(table);
    if (!b) {
      b = { names: Object.keys(this.tables[table]).sort(compareNodes), args: [], n: 0 };
      this.bufs.set(table, b);
    }
    b.args.push(pk);
    for (const c of b.names) b.args.push(cols.has(c) ? cols.get(c) : null);
    if (++b.n >= ROW_CHUNKS[0]) this.flush(table, b);
  }

  private flush(table: string, b: { names: string[]; args: unknown[]; n: number }): void {
    const per = b.names.length + 1;
    while (b.n > 0) {
      const n = chunkFor(ROW_CHUNKS, b.n);
      this.db.run(upsertSQL(table, b.names, n), b.args.splice(0, n * per));
      b.n -= n;
    }
  }

  flushAll(): void {
    for (const [t, b] of this.bufs) this.flush(t, b);
  }
}

// ---- domain rows ----

function knownColumn(tables: Tables, table: string, col: string): boolean {
  const t = tables[table];
  return t !== undefined && (col === DELETED_COLUMN || col in t);
}

/** Go: readDomainRow: every column of one domain row (undefined when absent). */
function readDomainRow(db: Db, tables: Tables, table: string, pk: string): Map<string, unknown> | undefined {
  const names = Object.keys(tables[table]).sort(compareNodes);
  if (names.length === 0) return new Map();
  const r = db.get(`SELECT ${names.map(quoteIdent).join(', ')} FROM ${quoteIdent(table)} WHERE id = ?`, [pk]);
  if (!r) return undefined;
  const out = new Map<string, unknown>();
  for (const n of names) out.set(n, sqlValue(r[n]));
  return out;
}

function isOne(v: unknown): boolean {
  return v === 1 || v === 1n || v === '1';
}

/** One touched row during an apply (Go: rowState). */
interface RowState {
  table: string;
  pk: string;
  rec: Rec;
  pending: Map<string, Version> | undefined;
  fresh: boolean;
  wasDeleted: boolean;
  won: Map<string, unknown> | null;
}

/** Go: rowState.materialise: the domain row and the record's extra
 *  values brought in line with the values that won. */
function materialise(db: Db, tables: Tables, s: RowState, newRows: RowWriter): void {
  const t = tables[s.table];
  const known = new Map<string, unknown>();
  for (const [col, v] of s.won!) {
    if (col === DELETED_COLUMN) continue;
    if (t !== undefined && knownColumn(tables, s.table, col)) known.set(col, v);
    else setExtra(s.rec, col, v);
  }
  if (t === undefined) return;
  const now = s.rec.deleted;
  if (!s.wasDeleted && !now) {
    const recreated = s.won!.has(DELETED_COLUMN);
    if (known.size === 0 && !recreated) return;
    if (s.fresh) newRows.add(s.table, s.pk, known);
    else upsert(db, s.table, s.pk, known);
    return;
  }
  if (!s.wasDeleted && now) {
    let row = new Map<string, unknown>();
    if (!s.fresh) row = readDomainRow(db, tables, s.table, s.pk) ?? row;
    for (const [c, v] of known) row.set(c, v);
    for (const [c, v] of row) if (v !== null && v !== undefined) setExtra(s.rec, c, v);
    if (s.fresh) return;
    db.run(`DELETE FROM ${quoteIdent(s.table)} WHERE id = ?`, [s.pk]);
    return;
  }
  if (s.wasDeleted && now) {
    for (const [c, v] of known) setExtra(s.rec, c, v);
    return;
  }
  // re-created
  const m = extraVals(s.rec);
  const row = new Map<string, unknown>();
  for (const c of Object.keys(t)) {
    if (m.has(c)) {
      row.set(c, m.get(c));
      m.delete(c);
      s.rec.dirty = true;
    }
  }
  for (const [c, v] of known) row.set(c, v);
  const whole = new Map<string, unknown>();
  for (const c of Object.keys(t)) whole.set(c, row.has(c) ? row.get(c) : null);
  upsert(db, s.table, s.pk, whole);
}

export type PendingFn = (db: Db, rows: { table: string; pk: string }[]) => Map<string, Map<string, Version>>;

export interface ApplyOptions {
  /** The versions of the device's own writes still in its outbox (Go: Options.Pending). */
  pending?: PendingFn;
  /** Records the versions only: the device acknowledging its own writes. */
  versionsOnly?: boolean;
}

export function rowKey(table: string, pk: string): string {
  return table + '\u0000' + pk;
}

/** Go: replica.Apply, as a device runs it (no sequence numbers, no
 *  conflict log, no owners). Returns the number of cells that won. The
 *  capture triggers must be silenced by the caller, in one transaction. */
export function applyRows(db: Db, tables: Tables, changes: Change[], opt: ApplyOptions = {}): number {
  if (changes.length === 0) return 0;
  const d = Dict.load(db);
  // loadStates
  const states = new Map<string, RowState>();
  const order: RowState[] = [];
  const pks = new Map<string, string[]>();
  for (const c of changes) {
    const k = rowKey(c.table, c.pk);
    if (states.has(k)) continue;
    const s: RowState = { table: c.table, pk: c.pk, rec: null as unknown as Rec, pending: undefined, fresh: false, wasDeleted: false, won: null };
    states.set(k, s);
    order.push(s);
    let list = pks.get(c.table);
    if (!list) pks.set(c.table, (list = []));
    list.push(c.pk);
  }
  const nodes = new Set<number>();
  for (const [table, list] of pks) {
    const tid = d.table(table);
    const recs = new Map<string, Rec>();
    loadRecords(db, tid, list, recs);
    for (const pk of list) {
      const s = states.get(rowKey(table, pk))!;
      s.rec = recs.get(pk) ?? newRec(tid, pk);
      s.wasDeleted = s.rec.deleted;
      for (const c of s.rec.clocks) nodes.add(c.node);
    }
  }
  d.resolve(nodes);
  if (opt.pending) {
    for (const [k, p] of opt.pending(db, order)) {
      const s = states.get(k);
      if (s) s.pending = p;
    }
  }
  for (const s of order) s.fresh = !s.rec.held && (s.pending === undefined || s.pending.size === 0);

  let won = 0;
  let newest = 0n;
  for (const c of changes) {
    const s = states.get(rowKey(c.table, c.pk))!;
    const bit = d.column(s.rec.tbl, c.column);
    const cl = recClock(s.rec, bit);
    let held = cl ? d.version(cl) : ZERO;
    const pv = s.pending?.get(c.column);
    if (pv && compare(pv, held) > 0) held = pv;
    if (decide(held, c.version, c.prev).outcome !== 'won') continue;
    const nid = d.node(c.version.node);
    setClock(s.rec, { bit, hlc: c.version.hlc, node: nid, seq: 0n });
    if (c.version.hlc > newest) newest = c.version.hlc;
    if (!opt.versionsOnly) {
      if (c.column === DELETED_COLUMN) s.rec.deleted = isOne(c.value);
      (s.won ??= new Map()).set(c.column, c.value);
    }
    won++;
  }
  // The clock never goes below a version held.
  if (newest > 0n) db.run('UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1', [newest]);
  const recs = new RecordWriter(db);
  const newRows = new RowWriter(db, tables);
  for (const s of order) {
    if (!s.rec.dirty) continue;
    if (!opt.versionsOnly && s.won) materialise(db, tables, s, newRows);
    recs.add(s.rec);
  }
  recs.flush();
  newRows.flushAll();
  return won;
}

// ---- reading versions ----

/** Go: replica.Versions: pk → column → version held (on a device:
 *  received or acknowledged). */
export function versions(db: Db, table: string, pks: string[]): Map<string, Map<string, Version>> {
  const out = new Map<string, Map<string, Version>>();
  const d = Dict.load(db);
  const tid = d.tables.get(table);
  if (tid === undefined || pks.length === 0) return out;
  const recs = new Map<string, Rec>();
  loadRecords(db, tid, pks, recs);
  const nodes: number[] = [];
  for (const r of recs.values()) for (const c of r.clocks) nodes.push(c.node);
  d.resolve(nodes);
  const names = d.colNames.get(tid)!;
  for (const [pk, r] of recs) {
    const m = new Map<string, Version>();
    for (const c of r.clocks) m.set(names[c.bit], d.version(c));
    out.set(pk, m);
  }
  return out;
}

/** Go: replica.MaxHLC: the newest version a record holds (_rows.hlc is
 *  the newest of each record's clocks). */
export function maxHLC(db: Db): bigint {
  const v = db.value('SELECT MAX(hlc) FROM _rows');
  return v == null ? 0n : toTimestamp(v);
}

/** Go: replica.EachCell, for the cells whose version is node's: every
 *  such cell with its value (domain row, or extra when deleted or
 *  unknown), tables by name, rows by key, columns by name. */
export function cellsOfNode(db: Db, tables: Tables, node: string): Change[] {
  const d = Dict.load(db);
  const nid = db.value('SELECT id FROM _nodes WHERE node = ?', [node]);
  const out: Change[] = [];
  if (nid === undefined) return out;
  for (const table of [...d.tables.keys()].sort(compareNodes)) {
    const tid = d.tables.get(table)!;
    const recs = db.all('SELECT pk, owner, seq, deleted, clocks, extra FROM _rows WHERE tbl = ?', [tid]).map((r) => scanRecord(r, tid));
    recs.sort((a, b) => (a.pk < b.pk ? -1 : a.pk > b.pk ? 1 : 0));
    const names = d.colNames.get(tid)!;
    for (const r of recs) {
      const mine = r.clocks.filter((c) => c.node === Number(nid));
      if (mine.length === 0) continue;
      const live = !r.deleted && tables[table] ? readDomainRow(db, tables, table, r.pk) ?? new Map() : undefined;
      const cells = mine
        .map((c) => {
          const col = names[c.bit];
          let value: unknown;
          if (c.bit === DELETED_BIT) value = r.deleted ? 1 : 0;
          else if (live && knownColumn(tables, table, col)) value = live.get(col) ?? null;
          else value = extraVals(r).get(col) ?? null;
          return { table, pk: r.pk, column: col, value, version: { hlc: c.hlc, node }, prev: ZERO } as Change;
        })
        .sort((a, b) => compareNodes(a.column, b.column));
      out.push(...cells);
    }
  }
  return out;
}

/** Go: replica.PutBack: the device holds some cells of one row as the
 *  server holds them, after the server refused its writes to them. cur
 *  are the server's cells, cols the refused columns (those missing from
 *  cur: the server has none); pendingLeft: writes of the row still wait
 *  in the outbox. */
export function putBack(db: Db, tables: Tables, table: string, pk: string, cur: Change[], cols: string[], pendingLeft: boolean): void {
  const d = Dict.load(db);
  const tid = d.table(table);
  const recs = new Map<string, Rec>();
  loadRecords(db, tid, [pk], recs);
  const r = recs.get(pk) ?? newRec(tid, pk);
  const s: RowState = { table, pk, rec: r, pending: undefined, fresh: false, wasDeleted: r.deleted, won: new Map() };
  const byCol = new Map(cur.map((c) => [c.column, c]));
  for (const col of cols) {
    const bit = d.column(tid, col);
    const c = byCol.get(col);
    if (c) {
      setClock(r, { bit, hlc: c.version.hlc, node: d.node(c.version.node), seq: 0n });
      s.won!.set(col, c.value);
    } else {
      const i = r.clocks.findIndex((x) => x.bit === bit);
      if (i >= 0) r.clocks.splice(i, 1);
      r.dirty = true;
      s.won!.set(col, null);
    }
    if (col === DELETED_COLUMN) r.deleted = c !== undefined && isOne(c.value);
  }
  if (r.clocks.length === 0 && !pendingLeft) {
    if (tables[table]) db.run(`DELETE FROM ${quoteIdent(table)} WHERE id = ?`, [pk]);
    if (r.held) db.run('DELETE FROM _rows WHERE tbl = ? AND pk = ?', [tid, pkArg(pk)]);
    return;
  }
  const rw = new RowWriter(db, tables);
  materialise(db, tables, s, rw);
  rw.flushAll();
  const w = new RecordWriter(db);
  w.add(r);
  w.flush();
}

// ---- the per-cell layout, converted (Go: upgradeCells) ----

/** Converts a replica of the per-cell layout (_cells, one row per cell,
 *  values stored twice) into version records, inside the caller's
 *  transaction, and drops _cells. A cell whose version is one of the
 *  device's own writes still in the outbox gets that write's prev as
 *  its version: pending writes are held in the outbox only. Returns the
 *  newest version met (0 when there was nothing to convert). Runs after
 *  the migrations and before the dictionary is filled, as Go's does. */
export function upgradeCells(db: Db, tables: Tables): bigint {
  if (db.value("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_cells'") === undefined) return 0n;
  const d = Dict.load(db);
  const hasOutbox = db.value("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_outbox'") !== undefined;
  // A device's outbox is one entry per row change by then (device
  // migration 00072 ran before this): its entries hold this device's
  // writes, and the prev of each of their columns.
  const pending = `FROM _outbox o JOIN _tables t ON t.id = o.tbl
      WHERE o.vals IS NOT NULL AND t.name = c.tbl AND o.pk = c.pk AND o.hlc = c.hlc AND c.node = (SELECT node FROM _replica WHERE id = 1)
      AND json_type(o.vals, '$."' || c.col || '"') IS NOT NULL ORDER BY o.id LIMIT 1`;
  const q = hasOutbox
    ? `SELECT c.tbl, c.pk, c.col, c.val, c.hlc, c.node, c.seq, c.owner,
        (SELECT json_extract(o.prev, '$."' || c.col || '"[0]') ${pending}) AS prev_hlc,
        (SELECT json_extract(o.prev, '$."' || c.col || '"[1]') ${pending}) AS prev_node
        FROM _cells c ORDER BY c.tbl, c.pk`
    : 'SELECT c.tbl, c.pk, c.col, c.val, c.hlc, c.node, c.seq, c.owner, NULL AS prev_hlc, NULL AS prev_node FROM _cells c ORDER BY c.tbl, c.pk';
  const hasOwner = db.all("SELECT name FROM pragma_table_info('_cells') WHERE name = 'owner'").length > 0;
  const rows = db.all(hasOwner ? q : q.replace('c.owner,', 'NULL AS owner,'));
  const owners = new Map<string, number>();
  const ownerID = (name: string): number => {
    let id = owners.get(name);
    if (id === undefined) {
      const v = db.value('SELECT id FROM _owners WHERE owner = ?', [name]) ?? db.value('INSERT INTO _owners (owner) VALUES (?) RETURNING id', [name]);
      owners.set(name, (id = Number(v)));
    }
    return id;
  };
  const w = new RecordWriter(db);
  let newest = 0n;
  let cur: Rec | null = null;
  let curTable = '';
  let vals = new Map<string, unknown>();
  let owner: unknown = null;
  const flush = () => {
    if (!cur) return;
    for (const [col, v] of vals) {
      if (col === DELETED_COLUMN) continue;
      if (cur.deleted || !tables[curTable] || !knownColumn(tables, curTable, col)) {
        if (v === null) continue;
        setExtra(cur, col, v);
      }
    }
    if (owner !== null) cur.owner = ownerID(String(owner));
    w.add(cur);
  };
  for (const row of rows) {
    const table = row.tbl as string;
    const pk = row.pk as string;
    const col = row.col as string;
    if (!cur || table !== curTable || pk !== cur.pk) {
      flush();
      cur = newRec(d.table(table), pk);
      curTable = table;
      vals = new Map();
      owner = null;
    }
    let hlc = toTimestamp(row.hlc);
    let node = row.node as string;
    if (hlc > newest) newest = hlc;
    const val = sqlValue(row.val ?? null);
    vals.set(col, val);
    if (row.owner != null) owner = row.owner;
    if (col === DELETED_COLUMN) cur.deleted = isOne(val);
    if (row.prev_hlc != null) {
      // A pending write: the base is what it replaced.
      hlc = toTimestamp(row.prev_hlc);
      node = row.prev_node as string;
      if (hlc === 0n && node === '') {
        d.column(cur.tbl, col);
        continue;
      }
    }
    const bit = d.column(cur.tbl, col);
    const nid = d.node(node);
    let seq = 0n;
    if (row.seq != null) {
      seq = toTimestamp(row.seq);
      const had = cur.seq == null ? 0n : toTimestamp(cur.seq);
      cur.seq = had > seq ? had : seq;
    }
    setClock(cur, { bit, hlc, node: nid, seq });
  }
  flush();
  w.flush();
  db.run('DROP TABLE _cells');
  return newest;
}

/** Go: replica.MaterialiseColumn: the values of a column a migration
 *  just added move from the records' extra values, where they were kept
 *  aside, into the domain rows of live rows. Returns the rows written.
 *  The capture triggers must be silenced by the caller. */
export function materialiseColumn(db: Db, tables: Tables, table: string, col: string): number {
  if (!tables[table]) return 0;
  const tid = Dict.load(db).tables.get(table);
  if (tid === undefined) return 0;
  const recs = db.all('SELECT pk, owner, seq, deleted, clocks, extra FROM _rows WHERE tbl = ? AND deleted = 0 AND extra IS NOT NULL', [tid]).map((r) => scanRecord(r, tid));
  const w = new RecordWriter(db);
  let n = 0;
  for (const r of recs) {
    const m = extraVals(r);
    if (!m.has(col)) continue;
    upsert(db, table, r.pk, new Map([[col, m.get(col)]]));
    m.delete(col);
    r.dirty = true;
    w.add(r);
    n++;
  }
  w.flush();
  return n;
}

/** Go: materialiseKeptAside: compares the synced columns with those
 *  seen last time (_device.known_columns) and materialises the values
 *  kept aside for the new ones. The capture triggers must be silenced. */
export function materialiseKeptAside(db: Db, tables: Tables): void {
  const before = new Set(String(db.value('SELECT known_columns FROM _device WHERE id = 1') ?? '').split('\n'));
  const now: string[] = [];
  for (const t of Object.keys(tables).sort(compareNodes)) {
    for (const c of Object.keys(tables[t]).sort(compareNodes)) {
      now.push(t + '.' + c);
      if (!before.has(t + '.' + c)) materialiseColumn(db, tables, t, c);
    }
  }
  db.run('UPDATE _device SET known_columns = ? WHERE id = 1', [now.join('\n')]);
}
