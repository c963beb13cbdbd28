// The device's side of version records (Go: client-sdk/device/rows.go):
// a record holds the versions the device received, and its own writes
// once acknowledged; a write still in the outbox is held there only.
import type { Db } from './db.js';
import { toTimestamp } from './hlc.js';
import type { Change } from './proto.js';
import { applyRows, rowKey, versions, type Tables } from './rows.js';
import { compare, type Version } from './version.js';

/** Go: pendingVersions (replica.Options.Pending): the newest outbox
 *  entry of each cell of the rows, by row key then column. */
export function pendingVersions(db: Db, rows: { table: string; pk: string }[]): Map<string, Map<string, Version>> {
  const out = new Map<string, Map<string, Version>>();
  if (Number(db.value('SELECT EXISTS (SELECT 1 FROM _outbox)')) === 0) return out;
  const byTable = new Map<string, string[]>();
  for (const k of rows) {
    let l = byTable.get(k.table);
    if (!l) byTable.set(k.table, (l = []));
    l.push(k.pk);
  }
  for (const [table, pks] of byTable) {
    for (const r of db.all('SELECT pk, col, hlc, node FROM _outbox WHERE tbl = ? AND pk IN (SELECT value FROM json_each(?)) ORDER BY id', [table, JSON.stringify(pks)])) {
      const k = rowKey(table, r.pk as string);
      let m = out.get(k);
      if (!m) out.set(k, (m = new Map()));
      const v: Version = { hlc: toTimestamp(r.hlc), node: r.node as string };
      const had = m.get(r.col as string);
      if (!had || compare(v, had) > 0) m.set(r.col as string, v);
    }
  }
  return out;
}

/** Go: resolvePrev: the prev of the outbox entries the stamping trigger
 *  left unresolved (prev_hlc = -1): the newest older entry of the same
 *  cell, else the version the record holds, else none. It runs before
 *  anything changes the records and before a batch is cut. */
export function resolvePrev(db: Db): void {
  db.run(`UPDATE _outbox AS e SET (prev_hlc, prev_node) =
    (SELECT o.hlc, o.node FROM _outbox o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id AND o.prev_hlc != -1
     ORDER BY o.id DESC LIMIT 1)
    WHERE e.prev_hlc = -1 AND EXISTS (SELECT 1 FROM _outbox o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id AND o.prev_hlc != -1)`);
  const byTable = new Map<string, string[]>();
  for (const r of db.all('SELECT DISTINCT tbl, pk FROM _outbox WHERE prev_hlc = -1')) {
    let l = byTable.get(r.tbl as string);
    if (!l) byTable.set(r.tbl as string, (l = []));
    l.push(r.pk as string);
  }
  for (const [table, pks] of byTable) {
    const base = versions(db, table, pks);
    // Rows with no version held (new rows, the common case): prev is
    // none, for all their entries at once.
    const fresh = pks.filter((pk) => !base.has(pk));
    for (let i = 0; i < fresh.length; i += 500) {
      db.run("UPDATE _outbox SET prev_hlc = 0, prev_node = '' WHERE prev_hlc = -1 AND tbl = ? AND pk IN (SELECT value FROM json_each(?))", [
        table,
        JSON.stringify(fresh.slice(i, i + 500)),
      ]);
    }
    for (const [pk, cols] of base) {
      for (const [col, v] of cols) {
        db.run('UPDATE _outbox SET prev_hlc = ?, prev_node = ? WHERE prev_hlc = -1 AND tbl = ? AND pk = ? AND col = ?', [v.hlc, v.node, table, pk, col]);
      }
      // Columns the record has no version of.
      db.run("UPDATE _outbox SET prev_hlc = 0, prev_node = '' WHERE prev_hlc = -1 AND tbl = ? AND pk = ?", [table, pk]);
    }
  }
}

/** Go: acknowledge: the versions of an acknowledged batch's entries go
 *  into the rows' records (the server holds them now), and the entries
 *  leave the outbox. Refused rows were set aside already. */
export function acknowledge(db: Db, tables: Tables, batchID: string): void {
  const changes: Change[] = db.all('SELECT tbl, pk, col, hlc, node FROM _outbox WHERE batch = ? ORDER BY id', [batchID]).map((r) => {
    const v: Version = { hlc: toTimestamp(r.hlc), node: r.node as string };
    return { table: r.tbl as string, pk: r.pk as string, column: r.col as string, value: null, version: v, prev: v };
  });
  applyRows(db, tables, changes, { versionsOnly: true });
  db.run('DELETE FROM _outbox WHERE batch = ?', [batchID]);
}
