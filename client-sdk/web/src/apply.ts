// Applying pulled changes to the replica: the device's side of
// replica.Apply (replica/merge.go), with the same rule for every cell
// (decide) and the same materialisation of domain rows. The shared
// vectors (client-sdk/device/testdata/apply_vectors.json) hold this to
// what the Go SDK leaves. The capture triggers must be silenced by the
// caller (_replica.applying = 1), inside one transaction.
import { Db, quoteIdent } from './db.js';
import { toTimestamp } from './hlc.js';
import { DELETED_COLUMN, ProtocolError, type Change, type Value } from './proto.js';
import { decide, ZERO, type Version } from './version.js';

/** Synced tables: table → column → type (id excluded), as served. */
export type Tables = Record<string, Record<string, string>>;

interface Held {
  val: unknown;
  ver: Version;
}

export function columnType(tables: Tables, table: string, column: string): string | undefined {
  const t = tables[table];
  if (!t) return undefined;
  if (column === DELETED_COLUMN) return 'INTEGER';
  return t[column];
}

/** syncproto.Schema.Check for a device: the cell of a known column
 *  must hold its type (the server sent it; a wrong one is a broken
 *  server, and the page is refused whole). Returns the value to store. */
export function checkValue(tables: Tables, c: Change): Value {
  const typ = columnType(tables, c.table, c.column);
  const v = c.value;
  if (typ === undefined || v === null) return v;
  const bad = () => {
    throw new ProtocolError('bad_value', `server sent an invalid cell: ${c.table}.${c.column} must be ${typ.toLowerCase()}`);
  };
  switch (typ) {
    case 'INTEGER':
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      return bad();
    case 'REAL':
      if (typeof v === 'number' || typeof v === 'bigint') return v;
      return bad();
    case 'TEXT':
      if (typeof v === 'string') return v;
      return bad();
  }
  return v;
}

function isOne(v: unknown): boolean {
  return v === 1 || v === 1n || v === '1';
}

/** SQLite cannot store JSON objects, arrays or booleans that a newer
 *  server might send for a column this replica does not know: kept as
 *  their JSON text (Go keeps such values as the driver converts them). */
function storable(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return typeof v === 'boolean' ? (v ? 1 : 0) : v;
  return JSON.stringify(v);
}

/** Cells written per statement: one statement per cell costs its
 *  crossing into WebAssembly each time (replica's cellWriter does the same
 *  with 128). A cell written twice in one page is updated in order. */
const CELL_CHUNK = 64;

function flushCells(db: Db, args: unknown[]): void {
  while (args.length > 0) {
    const n = Math.min(args.length / 6, CELL_CHUNK);
    const chunk = n === CELL_CHUNK ? CELL_CHUNK : n;
    db.run(
      `INSERT INTO _cells (tbl, pk, col, val, hlc, node) VALUES ${Array(chunk).fill('(?, ?, ?, ?, ?, ?)').join(', ')}
       ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, node = excluded.node`,
      args.splice(0, chunk * 6),
    );
  }
}

function rowKey(table: string, pk: string): string {
  return table + '\u0000' + pk;
}

/** Merges changes into the replica. Returns the number of cells that won. */
export function applyChanges(db: Db, tables: Tables, changes: Change[]): number {
  if (changes.length === 0) return 0;
  // The cells held for each row touched, read up front, a few hundred
  // rows per query (as replica.loadRows), and kept current as changes win.
  const held = new Map<string, Map<string, Held>>();
  const pks = new Map<string, string[]>();
  for (const c of changes) {
    const k = rowKey(c.table, c.pk);
    if (!held.has(k)) {
      held.set(k, new Map());
      let list = pks.get(c.table);
      if (!list) pks.set(c.table, (list = []));
      list.push(c.pk);
    }
  }
  for (const [table, list] of pks) {
    for (let i = 0; i < list.length; i += 500) {
      const part = JSON.stringify(list.slice(i, i + 500));
      for (const r of db.all('SELECT pk, col, val, hlc, node FROM _cells WHERE tbl = ? AND pk IN (SELECT value FROM json_each(?))', [table, part])) {
        held.get(rowKey(table, r.pk as string))!.set(r.col as string, { val: r.val, ver: { hlc: toTimestamp(r.hlc), node: r.node as string } });
      }
    }
  }
  const fresh = new Set<string>();
  for (const [k, cells] of held) if (cells.size === 0) fresh.add(k);

  const order: { table: string; pk: string }[] = [];
  const cellArgs: unknown[] = [];
  const dirty = new Map<string, Map<string, unknown>>();
  let won = 0;
  for (const c of changes) {
    const k = rowKey(c.table, c.pk);
    const cells = held.get(k)!;
    const h = cells.get(c.column);
    const d = decide(h ? h.ver : ZERO, c.version, c.prev);
    if (d.outcome !== 'won') continue;
    const val = storable(c.value);
    cellArgs.push(c.table, c.pk, c.column, val, c.version.hlc, c.version.node);
    if (cellArgs.length >= CELL_CHUNK * 6) flushCells(db, cellArgs);
    cells.set(c.column, { val, ver: c.version });
    won++;
    if (columnType(tables, c.table, c.column) === undefined) continue; // kept aside
    let cols = dirty.get(k);
    if (!cols) {
      cols = new Map();
      dirty.set(k, cols);
      order.push({ table: c.table, pk: c.pk });
    }
    cols.set(c.column, val);
  }
  // Materialising reads cells: every winning cell is written first.
  flushCells(db, cellArgs);
  for (const { table, pk } of order) {
    const k = rowKey(table, pk);
    const tomb = held.get(k)!.get(DELETED_COLUMN);
    let cols = dirty.get(k)!;
    if (fresh.has(k)) {
      const all = new Map<string, unknown>();
      for (const col of Object.keys(tables[table])) all.set(col, null);
      for (const [col, v] of cols) all.set(col, v);
      cols = all;
    }
    materialise(db, tables, table, pk, cols, tomb !== undefined && isOne(tomb.val));
  }
  return won;
}

function materialise(db: Db, tables: Tables, table: string, pk: string, won: Map<string, unknown>, deleted: boolean): void {
  if (deleted) {
    db.run(`DELETE FROM ${quoteIdent(table)} WHERE id = ?`, [pk]);
    return;
  }
  let cols = won;
  if (won.has(DELETED_COLUMN)) cols = rowCells(db, tables, table, pk);
  upsert(db, table, pk, cols);
}

/** replica.RowCells: the known cells of a row, from _cells. */
export function rowCells(db: Db, tables: Tables, table: string, pk: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of db.all('SELECT col, val FROM _cells WHERE tbl = ? AND pk = ?', [table, pk])) {
    if (columnType(tables, table, r.col as string) !== undefined) out.set(r.col as string, r.val);
  }
  return out;
}

function upsert(db: Db, table: string, pk: string, cols: Map<string, unknown>): void {
  const names = [...cols.keys()].filter((n) => n !== DELETED_COLUMN).sort(goStringOrder);
  const q = quoteIdent;
  const sql =
    `INSERT INTO ${q(table)} (id${names.map((n) => ', ' + q(n)).join('')}) VALUES (?${', ?'.repeat(names.length)}) ON CONFLICT (id) DO ` +
    (names.length === 0 ? 'NOTHING' : 'UPDATE SET ' + names.map((n) => `${q(n)} = excluded.${q(n)}`).join(', '));
  db.run(sql, [pk, ...names.map((n) => cols.get(n))]);
}

function goStringOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** replica.Rematerialise: a domain row rebuilt from its cells. */
export function rematerialise(db: Db, tables: Tables, table: string, pk: string): void {
  if (!tables[table]) return;
  const tomb = db.value('SELECT val FROM _cells WHERE tbl = ? AND pk = ? AND col = ?', [table, pk, DELETED_COLUMN]);
  if (tomb !== undefined && isOne(tomb)) {
    db.run(`DELETE FROM ${quoteIdent(table)} WHERE id = ?`, [pk]);
    return;
  }
  upsert(db, table, pk, rowCells(db, tables, table, pk));
}
