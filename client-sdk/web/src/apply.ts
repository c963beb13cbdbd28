// Applying pulled changes to the replica: the device's side of
// replica.Apply (replica/merge.go), with the same rule for every cell
// (decide) and the same version records and domain rows (rows.ts). The
// shared vectors (client-sdk/device/testdata/apply_vectors.json) hold
// this to what the Go SDK leaves. The capture triggers must be silenced
// by the caller (_replica.applying = 1), inside one transaction.
import type { Db } from './db.js';
import { DELETED_COLUMN, ProtocolError, type Change, type Value } from './proto.js';
import { applyRows, type PendingFn, type Tables } from './rows.js';

export type { Tables } from './rows.js';

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

/** Merges pulled changes into the replica, the device's pending writes
 *  counted as held versions. Returns the number of cells that won. */
export function applyChanges(db: Db, tables: Tables, changes: Change[], pending?: PendingFn): number {
  return applyRows(db, tables, changes, { pending });
}
