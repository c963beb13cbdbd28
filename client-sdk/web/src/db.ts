// A thin synchronous layer over sqlite-wasm's oo1 API: statements with
// bound parameters, rows as objects, and transactions that take the
// write lock at once (BEGIN IMMEDIATE), as the Go SDK's writer does.
// Nothing in a transaction awaits: the engine's transactions are
// synchronous, so no other call can interleave with them.
import type { Params, Row } from './api.js';

/** The subset of sqlite-wasm's oo1.DB the SDK uses. */
export interface OO1DB {
  exec(opts: { sql: string; bind?: unknown; rowMode?: 'object'; returnValue?: 'resultRows' }): unknown;
  prepare(sql: string): OO1Stmt;
  changes(total?: boolean, sixtyFour?: boolean): number | bigint;
  close(): void;
  filename?: string;
}

export interface OO1Stmt {
  bind(v: unknown): OO1Stmt;
  step(): boolean;
  get(into: object): Record<string, unknown>;
  reset(clearBindings?: boolean): OO1Stmt;
  finalize(): void;
  columnCount: number;
}

/** Statements kept prepared: the apply runs the same few thousands of
 *  times per page, and preparing costs more than running them. */
const MAX_CACHED = 256;

export class Db {
  private depth = 0;
  private cache = new Map<string, OO1Stmt>();
  constructor(readonly raw: OO1DB) {}

  private stmt(sql: string): OO1Stmt {
    let st = this.cache.get(sql);
    if (!st) {
      st = this.raw.prepare(sql);
      if (this.cache.size >= MAX_CACHED) {
        const [oldest, old] = this.cache.entries().next().value as [string, OO1Stmt];
        old.finalize();
        this.cache.delete(oldest);
      }
      this.cache.set(sql, st);
    }
    return st;
  }

  /** Forgets prepared statements (after the schema changed). */
  forget(): void {
    for (const st of this.cache.values()) st.finalize();
    this.cache.clear();
  }

  close(): void {
    this.forget();
    this.raw.close();
  }

  run(sql: string, params?: Params): number {
    const st = this.stmt(sql);
    try {
      if (params !== undefined && (!Array.isArray(params) || params.length > 0)) st.bind(bindable(params));
      while (st.step()) {
        // a statement that returns rows (RETURNING, PRAGMA): drained
      }
    } finally {
      st.reset(true);
    }
    return Number(this.raw.changes());
  }

  /** Runs a script of several statements (migrations). */
  script(sql: string): void {
    this.forget();
    this.raw.exec({ sql });
  }

  all<T extends Row = Row>(sql: string, params?: Params): T[] {
    const st = this.stmt(sql);
    const out: T[] = [];
    try {
      if (params !== undefined && (!Array.isArray(params) || params.length > 0)) st.bind(bindable(params));
      while (st.step()) out.push(st.get({}) as T);
    } finally {
      st.reset(true);
    }
    return out;
  }

  get<T extends Row = Row>(sql: string, params?: Params): T | undefined {
    return this.all<T>(sql, params)[0];
  }

  value(sql: string, params?: Params): unknown {
    const r = this.get(sql, params);
    return r === undefined ? undefined : Object.values(r)[0];
  }

  /** fn inside one transaction (a savepoint when nested); rolled back if it throws. */
  tx<T>(fn: () => T): T {
    if (this.depth > 0) {
      const name = `sp${this.depth}`;
      this.raw.exec({ sql: `SAVEPOINT ${name}` });
      this.depth++;
      try {
        const out = fn();
        this.raw.exec({ sql: `RELEASE ${name}` });
        return out;
      } catch (e) {
        this.raw.exec({ sql: `ROLLBACK TO ${name}; RELEASE ${name}` });
        throw e;
      } finally {
        this.depth--;
      }
    }
    this.raw.exec({ sql: 'BEGIN IMMEDIATE' });
    this.depth++;
    try {
      const out = fn();
      this.raw.exec({ sql: 'COMMIT' });
      return out;
    } catch (e) {
      try {
        this.raw.exec({ sql: 'ROLLBACK' });
      } catch {
        // the transaction may already be gone (SQLite rolls back on some errors)
      }
      throw e;
    } finally {
      this.depth--;
    }
  }
}

/** Values SQLite cannot take (booleans, objects) are turned into what
 *  the Go SDK would store: 1/0, JSON text. */
function bindable(params?: Params): unknown {
  if (params === undefined) return undefined;
  const conv = (v: unknown): unknown => {
    if (v === undefined) return null;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v;
    return JSON.stringify(v);
  };
  if (Array.isArray(params)) return params.map(conv);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) out[k] = conv(v);
  return out;
}

export function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}
