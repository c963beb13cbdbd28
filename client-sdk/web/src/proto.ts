// The wire protocol, as syncproto (endpoints.go, change.go, rows.go,
// errors.go): the messages of an exchange and their JSON forms. A batch
// is written in the grouped "rows" form; an answer is read in either
// form ("rows" or the older "changes"), or in the column form (columns.ts).
import { parse, stringify, type JSONValue } from './json.js';
import { toTimestamp, type Timestamp } from './hlc.js';
import { ZERO, isZero, type Version } from './version.js';

export const PATH_LOGIN = '/v1/auth/login';
export const PATH_REFRESH = '/v1/auth/refresh';
export const PATH_SYNC = '/v1/sync';
export const PATH_DEVICE_SCHEMA = '/v1/device/schema';
export const MEDIA_TYPE_COLUMNS = 'application/vnd.relais.columns';
export const DELETED_COLUMN = '_deleted';
export const MAX_BATCH_CHANGES = 5000;
export const DEFAULT_PAGE_LIMIT = 5000;
export const MAX_PAGE_LIMIT = 10000;

/** A cell value as it travels: SQLite's types (bigint for integers
 *  beyond 2^53), or, from a newer server, any JSON value. */
export type Value = null | string | number | bigint | Uint8Array | JSONValue;

export interface Change {
  table: string;
  pk: string;
  column: string;
  value: Value;
  version: Version;
  prev: Version;
}

export interface Batch {
  id: string;
  changes: Change[];
}

export interface SyncRequest {
  push?: Batch;
  cursor: bigint;
  limit?: number;
  clock: Timestamp;
  pending: number;
  app?: string;
  schema?: number;
  refuseRows: boolean;
}

export interface Refusal {
  table: string;
  pk: string;
  columns: string[];
  code: string;
  reason: string;
  rule: string;
  current: Change[];
}

export interface ConflictReport {
  table: string;
  pk: string;
  column: string;
  winner: Version;
  loser: Version;
}

export interface SyncResponse {
  ack: string;
  applied: number;
  conflicts: ConflictReport[];
  refused: Refusal[];
  changes: Change[];
  cursor: bigint;
  more: boolean;
  clock: Timestamp;
  history: string;
  historyParent: string;
  historySharedSeq: bigint;
}

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  user_id: string;
  role: string;
  device_id: string;
  refresh_token: string;
  refresh_expires_in: number;
  user_name?: string;
}

/** The protocol's error: a stable code, a sentence, details. */
export class ProtocolError extends Error {
  code: string;
  details: Record<string, unknown>;
  status: number;
  constructor(code: string, message: string, details: Record<string, unknown> = {}, status = 0) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.details = details;
    this.status = status;
  }
}

/** syncproto.DecodeError: the error envelope, or a generic error for a
 *  body that is not one (a proxy's HTML page). */
export function decodeError(status: number, body: string): ProtocolError {
  try {
    const v = parse(body) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    if (v && typeof v === 'object' && v.error && typeof v.error.code === 'string' && v.error.code !== '') {
      return new ProtocolError(v.error.code, String(v.error.message ?? ''), v.error.details ?? {}, status);
    }
  } catch {
    // not JSON: fall through
  }
  return new ProtocolError('internal', `server answered HTTP ${status}: ${body.slice(0, 200)}`, {}, status);
}

function versionPair(v: Version): [bigint, string] {
  return [v.hlc, v.node];
}

/** Same row, same version, no column twice: syncproto's groupEnd. */
function groupEnd(changes: Change[], i: number): number {
  const c = changes[i];
  const seen = new Set([c.column]);
  let j = i + 1;
  for (; j < changes.length; j++) {
    const n = changes[j];
    if (n.table !== c.table || n.pk !== c.pk || n.version.hlc !== c.version.hlc || n.version.node !== c.version.node || seen.has(n.column)) break;
    seen.add(n.column);
  }
  return j;
}

/** The grouped "rows" form: [table, pk, hlc delta, node, {col: val}, {col: prev}?]. */
export function encodeRows(changes: Change[]): unknown[] {
  const out: unknown[] = [];
  let prevHLC = 0n;
  for (let i = 0; i < changes.length; ) {
    const j = groupEnd(changes, i);
    const c = changes[i];
    const cells: Record<string, unknown> = {};
    const prevs: Record<string, unknown> = {};
    let anyPrev = false;
    for (let k = i; k < j; k++) {
      cells[changes[k].column] = wireValue(changes[k].value);
      if (!isZero(changes[k].prev)) {
        prevs[changes[k].column] = versionPair(changes[k].prev);
        anyPrev = true;
      }
    }
    const delta = BigInt.asIntN(64, c.version.hlc - prevHLC);
    prevHLC = c.version.hlc;
    out.push(anyPrev ? [c.table, c.pk, delta, c.version.node, cells, prevs] : [c.table, c.pk, delta, c.version.node, cells]);
    i = j;
  }
  return out;
}

function wireValue(v: Value): unknown {
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return v;
}

export function encodeRequest(r: SyncRequest): string {
  return stringify({
    push: r.push ? { id: r.push.id, rows: encodeRows(r.push.changes) } : undefined,
    cursor: r.cursor,
    limit: r.limit || undefined,
    clock: r.clock,
    pending: r.pending,
    app: r.app || undefined,
    schema: r.schema || undefined,
    refuse_rows: r.refuseRows || undefined,
  });
}

type Obj = Record<string, JSONValue>;

function asObj(v: unknown, what: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ProtocolError('malformed_body', `${what}: want an object`);
  return v as Obj;
}

function asStr(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new ProtocolError('malformed_body', `${what}: want a string`);
  return v;
}

function asInt(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new ProtocolError('malformed_body', `${what}: want an integer`);
}

/** An array, or [] for an absent or null member. */
function asArr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ProtocolError('malformed_body', `${what}: want an array`);
  return v;
}

export function decodeVersion(v: unknown, what = 'version'): Version {
  if (!Array.isArray(v) || v.length !== 2) throw new ProtocolError('malformed_body', `${what}: want [hlc, node]`);
  return { hlc: asInt(v[0], what), node: asStr(v[1], what) };
}

/** Reads the "rows" form back into changes. */
export function decodeRows(rows: unknown): Change[] {
  if (!Array.isArray(rows)) throw new ProtocolError('malformed_body', 'rows: want an array');
  const out: Change[] = [];
  let hlc = 0n;
  rows.forEach((g, gi) => {
    if (!Array.isArray(g) || g.length < 5 || g.length > 6) throw new ProtocolError('malformed_body', `row ${gi}: want [table, pk, hlc, node, cells]`);
    const table = asStr(g[0], `row ${gi}`);
    const pk = asStr(g[1], `row ${gi}`);
    hlc = BigInt.asIntN(64, hlc + asInt(g[2], `row ${gi} hlc`));
    const version = { hlc, node: asStr(g[3], `row ${gi}`) };
    const first = out.length;
    for (const [column, value] of Object.entries(asObj(g[4], `row ${gi} cells`))) {
      out.push({ table, pk, column, value, version, prev: ZERO });
    }
    if (g.length === 6) {
      for (const [column, p] of Object.entries(asObj(g[5], `row ${gi} prevs`))) {
        const c = out.slice(first).find((x) => x.column === column);
        if (!c) throw new ProtocolError('malformed_body', `row ${gi}: prev for ${column}, which the row does not carry`);
        c.prev = decodeVersion(p, `row ${gi} prev`);
      }
    }
  });
  return out;
}

/** Reads the older list of one object per cell. */
export function decodeChangeList(list: unknown): Change[] {
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list)) throw new ProtocolError('malformed_body', 'changes: want an array');
  return list.map((x, i) => {
    const o = asObj(x, `change ${i}`);
    return {
      table: asStr(o.tbl, `change ${i}`),
      pk: asStr(o.pk, `change ${i}`),
      column: asStr(o.col, `change ${i}`),
      value: o.val === undefined ? null : o.val,
      version: decodeVersion(o.ver, `change ${i}`),
      prev: o.prev === undefined || o.prev === null ? ZERO : decodeVersion(o.prev, `change ${i} prev`),
    };
  });
}

/** The fields of an answer other than its changes. */
export function decodeResponseHead(o: Obj): SyncResponse {
  const refused = asArr(o.refused, 'refused');
  const conflicts = asArr(o.conflicts, 'conflicts');
  return {
    ack: typeof o.ack === 'string' ? o.ack : '',
    applied: Number(o.applied ?? 0),
    conflicts: conflicts.map((x, i) => {
      const c = asObj(x, `conflict ${i}`);
      return {
        table: asStr(c.tbl, 'conflict'),
        pk: asStr(c.pk, 'conflict'),
        column: asStr(c.col, 'conflict'),
        winner: decodeVersion(c.winner),
        loser: decodeVersion(c.loser),
      };
    }),
    refused: refused.map((x, i) => {
      const r = asObj(x, `refusal ${i}`);
      return {
        table: asStr(r.tbl, 'refusal'),
        pk: asStr(r.pk, 'refusal'),
        columns: asArr(r.cols, 'refusal columns').map((c) => asStr(c, 'refusal column')),
        code: asStr(r.code, 'refusal'),
        reason: typeof r.reason === 'string' ? r.reason : '',
        rule: typeof r.rule === 'string' ? r.rule : '',
        current: decodeChangeList(r.current),
      };
    }),
    changes: [],
    cursor: o.cursor === undefined ? 0n : asInt(o.cursor, 'cursor'),
    more: o.more === true,
    clock: o.clock === undefined ? 0n : asInt(o.clock, 'clock'),
    history: typeof o.history === 'string' ? o.history : '',
    historyParent: typeof o.history_parent === 'string' ? o.history_parent : '',
    historySharedSeq: o.history_shared_seq === undefined ? 0n : asInt(o.history_shared_seq, 'history_shared_seq'),
  };
}

/** syncproto.DecodeResponse: an answer in JSON, in either form. */
export function decodeResponse(text: string): SyncResponse {
  let v: JSONValue;
  try {
    v = parse(text);
  } catch (e) {
    throw new ProtocolError('malformed_body', `body is not a valid exchange: ${(e as Error).message}`);
  }
  const o = asObj(v, 'answer');
  const r = decodeResponseHead(o);
  r.changes = decodeChangeList(o.changes);
  if (o.rows !== undefined && o.rows !== null) r.changes.push(...decodeRows(o.rows));
  return r;
}
