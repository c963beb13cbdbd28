// The outbox: one entry per row change (device migration 00072), run
// through the SQL the Go SDK generates and the server serves with the
// schema (device.OutboxSQL, ReplicaSQL.outbox), so that both SDKs cut,
// freeze, read and acknowledge entries with the same text. What is this
// SDK's own is the decoding of an entry's base (the row's packed clocks,
// rows.ts) and the steps around the statements, which follow the Go
// SDK's (client-sdk/device/outbox.go, sync.go, refused.go, clock.go,
// history.go) one for one.
import type { Db } from './db.js';
import { toTimestamp } from './hlc.js';
import type { Change, Value } from './proto.js';
import { applyRows, decodeClocks, Dict, rowKey, type Tables } from './rows.js';
import { compare, compareNodes, ZERO, type Version } from './version.js';

/** Go: device.OutboxSQL (parameters ?1, ?2). */
export interface OutboxSQL {
  columns: Record<string, string[]>;
  freeze: Record<string, string>;
  freeze_prev: string;
  in_flight: string;
  cut: string;
  uncut: string;
  batch_changes: string;
  read: string;
  read_all: string;
  ack: string;
  pending: string;
  held: string;
  reject: string;
  drop_row: string;
  reprev: string;
  row_pending: string;
}

/** One change of a frozen entry, with the entry's id. */
export interface EntryChange extends Change {
  entry: number;
}

export interface RowRef {
  table: string;
  pk: string;
}

/** Go: rowKeys: the rows of changes, each once, in key order. */
export function rowKeys(changes: readonly RowRef[]): RowRef[] {
  const seen = new Map<string, RowRef>();
  for (const c of changes) {
    const k = rowKey(c.table, c.pk);
    if (!seen.has(k)) seen.set(k, { table: c.table, pk: c.pk });
  }
  return [...seen.entries()].sort((a, b) => compareNodes(a[0], b[0])).map((e) => e[1]);
}

export class Outbox {
  constructor(
    private db: Db,
    private sql: OutboxSQL,
    private tables: Tables,
  ) {}

  /** Go: freeze: the open entries of batch (any when null) whose rows
   *  are among keys (any when null) get their values and prev. */
  freeze(batch: string | null, keys: readonly RowRef[] | null): void {
    if (Number(this.db.value('SELECT EXISTS (SELECT 1 FROM _outbox WHERE vals IS NULL)')) === 0) return;
    const byTable = new Map<string, string | null>();
    if (keys === null) {
      for (const t of Object.keys(this.tables).sort(compareNodes)) byTable.set(t, null);
    } else {
      // Each row once per table (a page names a row once per cell).
      const pks = new Map<string, Set<string>>();
      for (const k of keys) {
        let l = pks.get(k.table);
        if (!l) pks.set(k.table, (l = new Set()));
        l.add(k.pk);
      }
      for (const [t, l] of pks) byTable.set(t, JSON.stringify([...l]));
    }
    for (const [t, list] of byTable) {
      const stmt = this.sql.freeze[t];
      if (stmt === undefined) continue; // a table this replica does not sync has no entries
      this.db.run(stmt, [batch, list]);
    }
    this.db.run(this.sql.freeze_prev);
  }

  /** The changes (cells) waiting. */
  pending(): number {
    return Number(this.db.value(this.sql.pending) ?? 0);
  }

  /** Go: readEntries: the changes of a frozen batch (all frozen entries
   *  when batch is null), prev from the entry's prev, else from the base
   *  it copied from the row's record. */
  read(batch: string | null): EntryChange[] {
    const rows = batch === null ? this.db.all(this.sql.read_all) : this.db.all(this.sql.read, [batch]);
    let d: Dict | null = null;
    const bases = new Map<number, Map<string, Version>>();
    return rows.map((r) => {
      const version: Version = { hlc: toTimestamp(r.hlc), node: r.node as string };
      let prev = ZERO;
      const entry = Number(r.entry);
      if (r.prev_hlc != null) {
        prev = { hlc: toTimestamp(r.prev_hlc), node: String(r.prev_node ?? '') };
      } else if (r.base instanceof Uint8Array) {
        let vs = bases.get(entry);
        if (!vs) {
          d ??= Dict.load(this.db);
          vs = baseVersions(d, r.tbl as string, r.base);
          bases.set(entry, vs);
        }
        prev = vs.get(r.col as string) ?? ZERO;
      }
      return { table: r.tbl as string, pk: r.pk as string, column: r.col as string, value: value(r.val), version, prev, entry };
    });
  }

  /** Go: pendingVersions (replica.Options.Pending) from held: the newest
   *  frozen entry of each cell of the rows (frozen before the merge). */
  held(rows: readonly RowRef[]): Map<string, Map<string, Version>> {
    const out = new Map<string, Map<string, Version>>();
    if (Number(this.db.value('SELECT EXISTS (SELECT 1 FROM _outbox)')) === 0) return out;
    const byTable = new Map<string, string[]>();
    for (const k of rows) {
      let l = byTable.get(k.table);
      if (!l) byTable.set(k.table, (l = []));
      l.push(k.pk);
    }
    for (const [table, pks] of byTable) {
      for (const r of this.db.all(this.sql.held, [table, JSON.stringify(pks)])) {
        const vals = Object.values(r);
        const [pk, col, hlc, node] = vals as [string, string, unknown, string];
        const k = rowKey(table, pk);
        let m = out.get(k);
        if (!m) out.set(k, (m = new Map()));
        const v: Version = { hlc: toTimestamp(hlc), node };
        const had = m.get(col);
        if (!had || compare(v, had) > 0) m.set(col, v);
      }
    }
    return out;
  }

  /** Go: acknowledge: the versions of an acknowledged batch go into the
   *  rows' records (versions only), and its entries leave the outbox. */
  acknowledge(batch: string): void {
    const changes = this.read(batch).map((c) => ({ ...c, prev: c.version }));
    applyRows(this.db, this.tables, changes, { versionsOnly: true });
    this.db.run(this.sql.ack, [batch]);
  }

  /** Go: nextBatch's transaction: the batch in flight, or a new one cut
   *  from the oldest entries (whole rows) and frozen. */
  nextBatch(newID: () => string, size: number, maxChanges: number): { id: string; changes: EntryChange[] } | null {
    let id = this.db.value(this.sql.in_flight) as string | undefined;
    if (id === undefined || id === null) {
      id = newID();
      if (!this.cut(id, size, maxChanges)) return null;
    }
    const changes = this.read(id);
    return changes.length > 0 ? { id, changes } : null;
  }

  /** Go: cutBatch. */
  private cut(id: string, size: number, maxChanges: number): boolean {
    for (size = Math.max(size, 1); ; size = Math.max(Math.floor(size / 2), 1)) {
      if (this.db.run(this.sql.cut, [id, size]) === 0) return false;
      this.freeze(id, null);
      const n = Number(this.db.value(this.sql.batch_changes, [id]));
      if (n <= maxChanges || size === 1) return true;
      this.db.run(this.sql.uncut, [id]);
    }
  }

  /** Go: setAsideRow's statements: the row's changes of the batch move
   *  to _rejected and leave the outbox. */
  reject(batch: string, table: string, pk: string, code: string, reason: string, rule: string, at: number): void {
    this.db.run(this.sql.reject, [batch, table, pk, code, reason, rule, at]);
    this.db.run(this.sql.drop_row, [batch, table, pk]);
  }

  /** The oldest pending entry of the row changing col now follows v;
   *  false when there is none (the cell was not written again). */
  reprev(table: string, pk: string, col: string, v: Version): boolean {
    return this.db.run(this.sql.reprev, [table, pk, col, v.hlc, v.node]) > 0;
  }

  /** Whether the row has an entry left (PutBack's pendingLeft). */
  rowPending(table: string, pk: string): boolean {
    return Number(this.db.value(this.sql.row_pending, [table, pk]) ?? 0) === 1;
  }
}

/** Go: ClockReader.Versions: a copy of a row's clocks, column → version. */
function baseVersions(d: Dict, table: string, base: Uint8Array): Map<string, Version> {
  const cs = decodeClocks(base);
  const tid = d.tables.get(table);
  if (tid === undefined) throw new Error(`replica: clocks of table ${table}, which has no number`);
  d.resolve(cs.map((c) => c.node));
  const names = d.colNames.get(tid) ?? [];
  const out = new Map<string, Version>();
  for (const c of cs) if (c.bit < names.length && names[c.bit] !== '') out.set(names[c.bit], d.version(c));
  return out;
}

/** A value read back from vals as a change carries it. */
function value(v: unknown): Value {
  return (v instanceof Uint8Array ? new TextDecoder().decode(v) : v) as Value;
}
