// The device engine: the replica (built from the server's device schema),
// the sync loop, tokens, refusals, clock restamp, revocation wipe. It is
// the web counterpart of client-sdk/device and follows it step by step;
// where a Go function is mirrored, its name is given. It runs in a
// dedicated worker in browsers (worker.ts) and in-process in Node.
import type { Params, Progress, Rejection, Row, RuleInfo, Status, SyncReport, User } from './api.js';
import { RelaisError } from './api.js';
import { applyChanges, checkValue, columnType, type Tables } from './apply.js';
import { Db, quoteIdent } from './db.js';
import { fromMillis, next, toTimestamp, type Timestamp } from './hlc.js';
import { parse, stringify } from './json.js';
import {
  DEFAULT_PAGE_LIMIT,
  DELETED_COLUMN,
  encodeRequest,
  MAX_BATCH_CHANGES,
  MAX_PAGE_LIMIT,
  PATH_DEVICE_SCHEMA,
  PATH_LOGIN,
  PATH_REFRESH,
  PATH_SYNC,
  ProtocolError,
  type Batch,
  type Change,
  type Refusal,
  type SyncResponse,
  type TokenResponse,
} from './proto.js';
import { Outbox, rowKeys, type OutboxSQL } from './outbox.js';
import { cellsOfNode, dictionary, goJSON, materialiseKeptAside, maxHLC, putBack, upgradeCells } from './rows.js';
import { exchange, NetworkError, send } from './transport.js';
import { uuidv7 } from './uuid.js';
import { compare, compareNodes, ZERO } from './version.js';

/** GET /v1/device/schema (Go: device.ReplicaSQL). */
export interface DeviceSchema {
  version: string;
  domain_version: number;
  migrations: { set: string; version: number; up: string }[];
  triggers: string[];
  tables: Tables;
  erase: string[];
  rules: RuleInfo[];
  /** The outbox's statements (Go: device.OutboxSQL). */
  outbox: OutboxSQL;
}

export interface EngineOptions {
  server: string;
  appVersion?: string;
  storage: 'opfs' | 'memory';
  storageWarning: string | null;
  /** How long one exchange is retried on network errors (default 2 min). */
  retryForMs?: number;
  maxExchanges?: number;
  /** Fixed page and batch sizes (tests); 0 lets them follow the link. */
  pageLimit?: number;
  batchSize?: number;
  /** Shifts the wall clock the replica reads, like Options.ClockSkew (tests). */
  clockSkewMs?: number;
}

export type Emit = (event: 'change' | 'status' | 'progress', payload: unknown) => void;

const NOT_LOGGED_IN = "cet appareil n'est pas connecté : connectez-vous d'abord";

/** The web SDK's own bookkeeping: which migrations ran, the schema
 *  document last installed (so the replica opens offline), and what the
 *  server said of the person at login. Not part of the shared replica. */
const WEB_DDL = `
CREATE TABLE IF NOT EXISTS _web_migrations (set_name TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (set_name, version));
CREATE TABLE IF NOT EXISTS _web_state (id INTEGER PRIMARY KEY CHECK (id = 1), schema_version TEXT, schema_json TEXT, user_name TEXT);
INSERT OR IGNORE INTO _web_state (id) VALUES (1);
`;

/** Describes a sync failure in French for the conseillère (Go: device.Describe). */
export function describe(e: unknown): string {
  if (e instanceof ProtocolError || e instanceof RelaisError) {
    const what: Record<string, string> = {
      unauthorized: "la session a expiré : reconnectez-vous ; rien de ce qui est sur la tablette n'est perdu",
      token_expired: "la session a expiré : reconnectez-vous ; rien de ce qui est sur la tablette n'est perdu",
      not_logged_in: NOT_LOGGED_IN,
      device_revoked: 'cet appareil a été révoqué : ses données locales ont été effacées',
      user_disabled: 'ce compte a été désactivé : contactez votre coordinateur ou coordinatrice',
      clock_ahead: "la date ou l'heure de la tablette est en avance : corrigez-la dans les réglages, puis synchronisez à nouveau",
      rate_limited: 'trop de tentatives : patientez quelques minutes avant de réessayer',
      forbidden_scope: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      invalid_row: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      bad_value: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      unknown_table: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      unknown_column: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      bad_change: 'des modifications ont été refusées par le serveur (voir les modifications refusées)',
      internal: "le serveur a rencontré une erreur : réessayez plus tard ; rien de ce qui est sur la tablette n'est perdu",
      offline: "serveur injoignable : vérifiez la connexion, la synchronisation reprendra où elle s'est arrêtée ; rien n'est perdu",
      bad_credentials: 'adresse e-mail ou mot de passe incorrect',
    };
    return (what[e.code] ?? "le serveur a refusé l'échange") + ` (${e.code})`;
  }
  if (e instanceof NetworkError) return describe(new RelaisError('offline', ''));
  return "la synchronisation s'est interrompue : " + String((e as Error)?.message ?? e);
}

/** Turns what SQLite, the server or the network threw into a RelaisError. */
export function toRelaisError(e: unknown, rules: RuleInfo[] = []): RelaisError {
  if (e instanceof RelaisError) return e;
  if (e instanceof ProtocolError) return new RelaisError(e.code, describe(e), undefined, e.details);
  if (e instanceof NetworkError) return new RelaisError('offline', describe(e));
  const msg = String((e as Error)?.message ?? e);
  const rule = /relais: rule ([a-z0-9_]+): ([\s\S]*)$/.exec(msg);
  if (rule) {
    const info = rules.find((r) => r.name === rule[1]);
    return new RelaisError('rule', rule[2].trim(), rule[1], info ? { table: info.table, columns: info.columns } : undefined);
  }
  const own = /relais: ([\s\S]*)$/.exec(msg);
  if (own) return new RelaisError('sql', own[1].trim());
  return new RelaisError('sql', msg.replace(/^SQLITE_[A-Z_]+: sqlite3 result code \d+: /, ''));
}

/** The access token's life, counted on the monotonic clock from the
 *  answer's arrival, never on the wall clock (Go: accessState). */
class Access {
  private until = 0; // performance.now() ms; 0 when unknown
  received(expiresIn: number) {
    const life = expiresIn * 1000;
    this.until = performance.now() + life - Math.min(30_000, life / 10);
  }
  stale(): boolean {
    return this.until !== 0 && performance.now() >= this.until;
  }
  forget() {
    this.until = 0;
  }
}

/** Page and batch sizes that grow while exchanges are quick (Go: sizer). */
class Sizer {
  limit: number;
  constructor(private fixed: number, private least: number, private most: number) {
    this.limit = fixed > 0 ? fixed : least;
  }
  observe(full: boolean, tookMs: number) {
    if (this.fixed > 0) return;
    if (full && tookMs < 500) this.limit = Math.min(2 * this.limit, this.most);
    else if (tookMs > 2000) this.limit = Math.max(Math.floor(this.limit / 2), this.least);
  }
}

interface Built {
  batch: Batch | null;
  pending: number;
  body: string;
}

/** Content refusals of a whole batch: re-sending would fail for ever (Go: contentCodes). */
const CONTENT_CODES = new Set(['bad_change', 'bad_value', 'unknown_table', 'unknown_column', 'invalid_row', 'forbidden_scope']);

export class Engine {
  readonly node: string;
  private access = new Access();
  private lock: Promise<unknown> = Promise.resolve();
  private syncing = false;
  private online = true;
  private schema: DeviceSchema;
  private outbox: Outbox;

  private constructor(
    readonly db: Db,
    private opts: EngineOptions,
    schema: DeviceSchema,
    node: string,
    private emit: Emit,
  ) {
    this.schema = schema;
    this.node = node;
    this.outbox = new Outbox(db, schema.outbox, schema.tables);
  }

  /** Opens the replica in db: fetches the device schema from the server
   *  (or uses the one installed last time, offline), runs the migrations
   *  not yet run, installs the triggers, and gives the device its node id. */
  static async open(db: Db, opts: EngineOptions, emit: Emit): Promise<Engine> {
    // As the Go SDK's store: freed pages zeroed (an erased beneficiary's
    // values must not linger in the file), every commit durable, no
    // foreign keys (cells of a row arrive in any order); a page cache
    // sized for the first sync's scattered B-tree inserts.
    db.script('PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -16384;');
    db.script(WEB_DDL);
    const cached = db.get<{ schema_version: string | null; schema_json: string | null }>('SELECT schema_version, schema_json FROM _web_state WHERE id = 1');
    let schema: DeviceSchema | null = null;
    try {
      const res = await fetch(opts.server.replace(/\/+$/, '') + PATH_DEVICE_SCHEMA, { headers: { Accept: 'application/json' } });
      if (res.ok) schema = (await res.json()) as DeviceSchema;
      else if (!cached?.schema_json) throw new RelaisError('internal', `le serveur n'a pas donné le schéma de l'appareil (HTTP ${res.status})`);
    } catch (e) {
      if (e instanceof RelaisError) throw e;
      // offline: the schema installed last time will do
    }
    if (!schema) {
      if (!cached?.schema_json) {
        throw new RelaisError('offline', "première ouverture : le serveur est injoignable ; il faut une connexion pour préparer l'appareil la première fois");
      }
      schema = JSON.parse(cached.schema_json) as DeviceSchema;
    }
    let converted = 0n;
    if (cached?.schema_version !== schema.version) converted = installSchema(db, schema);
    const node = initReplica(db, converted);
    db.run('UPDATE _device SET clock_skew_ms = ? WHERE id = 1', [opts.clockSkewMs ?? 0]);
    return new Engine(db, opts, schema, node, emit);
  }

  get rules(): RuleInfo[] {
    return this.schema.rules ?? [];
  }

  get tables(): Tables {
    return this.schema.tables;
  }

  private wall(): number {
    return Date.now() + (this.opts.clockSkewMs ?? 0);
  }

  /** Serialises sync, login, logout and wipe (Go: syncMu). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  setOnline(on: boolean) {
    if (this.online !== on) {
      this.online = on;
      this.emitStatus();
    }
  }

  emitStatus() {
    try {
      this.emit('status', this.status());
    } catch {
      // closed
    }
  }

  // ---- reads and writes by the application ----

  query(sql: string, params?: Params): Row[] {
    try {
      return this.db.all(sql, params);
    } catch (e) {
      throw toRelaisError(e, this.rules);
    }
  }

  exec(sql: string, params?: Params): { changes: number } {
    return this.transaction([{ sql, params }]);
  }

  transaction(statements: { sql: string; params?: Params }[]): { changes: number } {
    // The entries a write touches are stamped above the clock's reading
    // before it (an open entry is updated in place, its id kept).
    const before = toTimestamp(this.db.value('SELECT hlc FROM _replica WHERE id = 1'));
    let changes = 0;
    try {
      this.db.tx(() => {
        for (const s of statements) changes += this.db.run(s.sql, s.params);
      });
    } catch (e) {
      throw toRelaisError(e, this.rules);
    }
    const tables = this.db
      .all<{ tbl: string }>('SELECT DISTINCT t.name AS tbl FROM _outbox o JOIN _tables t ON t.id = o.tbl WHERE o.hlc > ? ORDER BY t.name', [before])
      .map((r) => r.tbl);
    if (tables.length > 0 || changes > 0) {
      this.emit('change', { tables, source: 'local' });
      this.emitStatus();
    }
    return { changes };
  }

  private pending(): number {
    return this.outbox.pending();
  }

  // ---- status ----

  status(): Status {
    const d = this.db.get<Record<string, unknown>>(
      `SELECT server, email, user_id, role, access_token, refresh_token, last_sync_at, last_error, revoked_at,
       (SELECT COUNT(*) FROM _rejected) AS rejected,
       (SELECT user_name FROM _web_state WHERE id = 1) AS user_name FROM _device WHERE id = 1`,
    )!;
    const loggedIn = typeof d.refresh_token === 'string' && d.refresh_token !== '';
    return {
      node: this.node,
      pending: this.outbox.pending(),
      rejected: Number(d.rejected),
      lastSync: d.last_sync_at == null ? null : new Date(Number(d.last_sync_at)),
      lastError: (d.last_error as string | null) ?? null,
      online: this.online,
      syncing: this.syncing,
      loggedIn,
      revoked: d.revoked_at != null,
      user: d.user_id ? { id: String(d.user_id), role: String(d.role ?? ''), email: String(d.email ?? ''), name: (d.user_name as string | null) ?? null } : null,
      storage: this.opts.storage,
      storageWarning: this.opts.storageWarning,
    };
  }

  // ---- login, logout ----

  login(email: string, password: string, deviceName?: string): Promise<User> {
    return this.exclusive(async () => {
      const server = this.opts.server.replace(/\/+$/, '');
      const body = stringify({ email, password, device_id: this.node, device_name: deviceName || undefined });
      let ans: TokenResponse;
      try {
        ans = (await send(server + PATH_LOGIN, body, { gz: false, sync: false })).answer as TokenResponse;
      } catch (e) {
        if (e instanceof ProtocolError && e.code === 'device_revoked') {
          this.wipe();
        }
        if (e instanceof ProtocolError && e.code === 'bad_credentials') throw new RelaisError('bad_credentials', 'adresse e-mail ou mot de passe incorrect');
        if (e instanceof ProtocolError && e.code === 'rate_limited') {
          const secs = Number(e.details.retry_after_seconds ?? 60);
          throw new RelaisError('rate_limited', `trop de tentatives de connexion : réessayez dans ${Math.ceil(secs / 60)} min`, undefined, e.details);
        }
        throw toRelaisError(e, this.rules);
      }
      this.db.tx(() => {
        this.db.run(
          `UPDATE _device SET server = ?, email = ?, user_id = ?, role = NULLIF(?, ''), access_token = ?, refresh_token = ?,
           last_error = NULL, revoked_at = NULL WHERE id = 1`,
          [server, email, ans.user_id, ans.role, ans.access_token, ans.refresh_token],
        );
        this.db.run('UPDATE _web_state SET user_name = ? WHERE id = 1', [ans.user_name ?? null]);
      });
      this.access.received(ans.expires_in);
      this.setOnline(true);
      this.emitStatus();
      return this.status().user!;
    });
  }

  logout(): Promise<void> {
    return this.exclusive(async () => {
      this.access.forget();
      this.db.run('UPDATE _device SET access_token = NULL, refresh_token = NULL WHERE id = 1');
      this.emitStatus();
    });
  }

  // ---- sync (Go: Replica.Sync) ----

  sync(): Promise<SyncReport> {
    return this.exclusive(async () => {
      this.syncing = true;
      this.emitStatus();
      try {
        const rep = await this.syncLocked();
        this.setOnline(true);
        return rep;
      } catch (e) {
        if (e instanceof NetworkError) this.setOnline(false);
        const err = toRelaisError(e, this.rules);
        if (err.code !== 'device_revoked') {
          try {
            this.db.run('UPDATE _device SET last_error = ? WHERE id = 1', [describe(e)]);
          } catch {
            // the status keeps the previous error
          }
        }
        throw err;
      } finally {
        this.syncing = false;
        this.emitStatus();
      }
    });
  }

  private link(): { server: string; token: string; cursor: bigint } {
    const d = this.db.get<Record<string, unknown>>('SELECT server, access_token, refresh_token, cursor, revoked_at FROM _device WHERE id = 1')!;
    if (d.revoked_at != null) throw new RelaisError('device_revoked', 'cet appareil a été révoqué : ses données locales ont été effacées');
    if (!d.server || !d.refresh_token) throw new RelaisError('not_logged_in', NOT_LOGGED_IN);
    return { server: String(d.server), token: String(d.access_token ?? ''), cursor: toTimestamp(d.cursor) };
  }

  private async syncLocked(): Promise<SyncReport> {
    const rep: SyncReport = { exchanges: 0, pushed: 0, pulled: 0, conflicts: 0, rejected: 0, restamped: false, serverRestored: false, bytesUp: 0, bytesDown: 0 };
    const link = this.link();
    const server = link.server;
    let cursor = link.cursor;
    const token = { value: link.token };
    const outbox = this.pending();
    const pages = new Sizer(this.opts.pageLimit ?? 0, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
    const batches = new Sizer(this.opts.batchSize ?? 0, 1000, 4000);
    const maxExchanges = this.opts.maxExchanges ?? 100000;
    const progress = (more: boolean, retry?: { err: Error; waitMs: number }) =>
      this.emit('progress', {
        exchanges: rep.exchanges,
        pushed: rep.pushed,
        pulled: rep.pulled,
        bytesUp: rep.bytesUp,
        bytesDown: rep.bytesDown,
        outbox,
        more,
        ...(retry ? { retryInMs: Math.round(retry.waitMs), retryError: describe(retry.err) } : {}),
      } satisfies Progress);
    let ahead: { req: Built; done: Promise<{ resp?: SyncResponse; up: number; down: number; took: number; err?: unknown }> } | null = null;
    let built: Built | null = null;
    while (rep.exchanges < maxExchanges) {
      let req: Built;
      let resp: SyncResponse | undefined;
      let err: unknown;
      let up = 0;
      let down = 0;
      let took = 0;
      if (ahead) {
        req = ahead.req;
        const a = await ahead.done;
        ahead = null;
        ({ resp, up, down, took, err } = a);
        if (err && isTokenRefusal(err)) {
          try {
            token.value = await this.refresh(server);
            const s = await this.exchangeOnce(server, token.value, req.body, progress);
            resp = s.answer;
            up += s.up;
            down += s.down;
            err = undefined;
          } catch (e) {
            err = e;
          }
        }
      } else {
        req = built ?? this.buildRequest(cursor, pages.limit, batches.limit);
        built = null;
        const start = performance.now();
        try {
          const s = await this.exchangeAuthed(server, token, req.body, progress);
          resp = s.answer;
          up = s.up;
          down = s.down;
        } catch (e) {
          err = e;
        }
        took = performance.now() - start;
      }
      rep.bytesUp += up;
      rep.bytesDown += down;
      rep.exchanges++;
      if (err instanceof ProtocolError && err.code === 'clock_ahead' && !rep.restamped) {
        if (this.restampPending(err)) {
          rep.restamped = true;
          continue;
        }
      }
      if (err !== undefined) throw this.handleFailure(req.batch, err, rep);
      resp = resp!;
      if (this.checkHistory(resp)) rep.serverRestored = true;
      pages.observe(resp.more, took);
      if (req.batch && resp.ack === req.batch.id) batches.observe(req.pending > req.batch.changes.length, took);
      if (req.batch === null && resp.more && rep.exchanges < maxExchanges) {
        const nxt = this.buildRequest(resp.cursor, pages.limit, batches.limit);
        if (nxt.batch === null && !this.access.stale()) {
          const started = performance.now();
          const tok = token.value;
          ahead = {
            req: nxt,
            done: this.exchangeOnce(server, tok, nxt.body, progress).then(
              (s) => ({ resp: s.answer, up: s.up, down: s.down, took: performance.now() - started }),
              (e) => ({ err: e, up: 0, down: 0, took: performance.now() - started }),
            ),
          };
        } else {
          built = nxt;
        }
      }
      let aside: number;
      try {
        aside = this.applyAnswer(req.batch, resp);
      } catch (e) {
        if (ahead) {
          const a = await ahead.done;
          rep.bytesUp += a.up;
          rep.bytesDown += a.down;
          rep.exchanges++;
        }
        throw e;
      }
      if (req.batch && resp.ack === req.batch.id) {
        rep.pushed += req.batch.changes.length - aside;
        rep.conflicts += resp.conflicts.length;
        rep.rejected += aside;
      }
      rep.pulled += resp.changes.length;
      cursor = resp.cursor;
      progress(resp.more);
      const pushedAll = req.batch === null || (resp.ack === req.batch.id && req.pending === req.batch.changes.length);
      if (!resp.more && pushedAll) return rep;
    }
    throw new RelaisError('internal', `synchronisation arrêtée après ${rep.exchanges} échanges : relancez-la pour continuer`);
  }

  private exchangeOnce(server: string, token: string, body: string, progress: (more: boolean, retry?: { err: Error; waitMs: number }) => void) {
    return exchange(server + PATH_SYNC, body, token, {
      retryForMs: this.opts.retryForMs ?? 120_000,
      onRetry: (err, waitMs) => progress(true, { err, waitMs }),
    });
  }

  /** Go: exchangeAuthed and retryRefusedToken. */
  private async exchangeAuthed(server: string, token: { value: string }, body: string, progress: (more: boolean, retry?: { err: Error; waitMs: number }) => void) {
    let refreshed = false;
    if (this.access.stale() || token.value === '') {
      token.value = await this.refresh(server);
      refreshed = true;
    }
    try {
      return await this.exchangeOnce(server, token.value, body, progress);
    } catch (e) {
      if (refreshed || !isTokenRefusal(e)) throw e;
      token.value = await this.refresh(server);
      return this.exchangeOnce(server, token.value, body, progress);
    }
  }

  /** Go: refreshLocked. Tried twice on network errors: the server takes a
   *  spent token once more shortly after its use, not a third time. */
  private async refresh(server: string): Promise<string> {
    const rt = this.db.value('SELECT refresh_token FROM _device WHERE id = 1');
    if (typeof rt !== 'string' || rt === '') throw new RelaisError('not_logged_in', NOT_LOGGED_IN);
    const body = stringify({ refresh_token: rt, device_id: this.node });
    let ans: TokenResponse | undefined;
    let last: unknown;
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        ans = (await send(server + PATH_REFRESH, body, { gz: false, sync: false })).answer as TokenResponse;
        break;
      } catch (e) {
        last = e;
        if (e instanceof ProtocolError) break;
      }
    }
    if (!ans) {
      if (last instanceof ProtocolError && last.code === 'unauthorized') {
        this.access.forget();
        this.db.run('UPDATE _device SET access_token = NULL, refresh_token = NULL WHERE id = 1');
      }
      throw last;
    }
    this.db.run("UPDATE _device SET access_token = ?, refresh_token = ?, role = COALESCE(NULLIF(?, ''), role) WHERE id = 1", [
      ans.access_token,
      ans.refresh_token,
      ans.role,
    ]);
    this.access.received(ans.expires_in);
    return ans.access_token;
  }

  /** Go: buildRequest. */
  private buildRequest(cursor: bigint, limit: number, batchSize: number): Built {
    const { batch, pending } = this.nextBatch(batchSize);
    const clock = this.tick();
    const resync = Number(this.db.value('SELECT resync FROM _device WHERE id = 1')) === 1;
    const body = encodeRequest({
      push: batch ?? undefined,
      cursor,
      limit,
      clock,
      pending,
      app: this.opts.appVersion ?? 'relais-web-sdk',
      schema: this.schema.domain_version,
      refuseRows: true,
    });
    // resync is an older SDK's flag, honoured while set (never set here)
    return { batch, pending, body: resync ? body.replace(/}$/, ',"resync":true}') : body };
  }

  /** The replica's clock, advanced by one event (Go: Replica.clock). */
  private tick(): Timestamp {
    return this.db.tx(() => {
      const last = toTimestamp(this.db.value('SELECT hlc FROM _replica WHERE id = 1'));
      const t = next(last, 0n, fromMillis(this.wall()));
      this.db.run('UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1', [t]);
      return t;
    });
  }

  /** Go: nextBatch: the batch in flight (sent again identical: its
   *  entries are frozen), or a new one cut from the oldest entries,
   *  whole rows, and frozen in the same transaction. */
  private nextBatch(size: number): { batch: Batch | null; pending: number } {
    return this.db.tx(() => {
      const b = this.outbox.nextBatch(uuidv7, size, MAX_BATCH_CHANGES);
      const batch = b ? { id: b.id, changes: b.changes.map(({ entry: _, ...c }) => c as Change) } : null;
      return { batch, pending: this.pending() };
    });
  }

  /** Runs fn with the capture triggers silenced, in one transaction (Go: applyLocal). */
  private applyLocal<T>(fn: () => T): T {
    return this.db.tx(() => {
      this.db.run('UPDATE _replica SET applying = 1 WHERE id = 1');
      try {
        return fn();
      } finally {
        this.db.run('UPDATE _replica SET applying = 0 WHERE id = 1');
      }
    });
  }

  /** Go: applyAnswer. One transaction: the acknowledged batch leaves the
   *  outbox, refused rows are set aside, the page is merged, the cursor
   *  and clock advance. Returns the number of changes set aside. */
  applyAnswer(batch: Batch | null, resp: SyncResponse): number {
    for (const c of resp.changes) c.value = checkValue(this.tables, c);
    let aside = 0;
    const touched = new Set<string>();
    this.applyLocal(() => {
      // The pending writes to the rows the page brings, and to the rows
      // refused, are frozen first: their values are read before the page
      // may change them, their prev before the records move.
      const rows: { table: string; pk: string }[] = [...resp.changes];
      if (batch && resp.ack === batch.id) rows.push(...resp.refused);
      if (rows.length > 0) this.outbox.freeze(null, rows);
      if (batch && resp.ack === batch.id) {
        // Before the page: the page may bring a newer version of a cell
        // whose refused write is put back as the server held it.
        aside = this.setAside(batch.id, resp.refused);
        for (const r of resp.refused) touched.add(r.table);
        this.outbox.acknowledge(batch.id);
      }
      applyChanges(this.db, this.tables, resp.changes, (_db, rows) => this.outbox.held(rows));
      const last = toTimestamp(this.db.value('SELECT hlc FROM _replica WHERE id = 1'));
      this.db.run('UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1', [next(last, resp.clock, fromMillis(this.wall()))]);
      let lastSync: number | null = null;
      if (!resp.more) {
        lastSync = Date.now();
        this.db.run('UPDATE _device SET resync = 0 WHERE id = 1');
      }
      this.db.run('UPDATE _device SET cursor = ?, last_sync_at = COALESCE(?, last_sync_at), last_error = NULL WHERE id = 1', [resp.cursor, lastSync]);
    });
    for (const c of resp.changes) if (this.tables[c.table]) touched.add(c.table);
    if (touched.size > 0) this.emit('change', { tables: [...touched].sort(), source: 'sync' });
    return aside;
  }

  /** Go: setAside and setAsideRow: every change the batch made to a
   *  refused row moves from the outbox to _rejected, and each refused
   *  cell not written again since is put back as the server holds it.
   *  The rows' entries were frozen before. */
  private setAside(batchID: string, refused: Refusal[]): number {
    let n = 0;
    const at = Date.now();
    const inBatch = refused.length > 0 ? this.outbox.read(batchID) : [];
    for (const rf of refused) {
      const current = new Map<string, Change>();
      for (const c of rf.current) {
        if (c.table !== rf.table || c.pk !== rf.pk) throw new ProtocolError('bad_change', `server sent a cell of ${c.table} ${c.pk} with the refusal of ${rf.table} ${rf.pk}`);
        if (columnType(this.tables, c.table, c.column) !== undefined) c.value = checkValue(this.tables, c);
        else if (typeof c.value === 'number' || typeof c.value === 'bigint') c.value = String(c.value);
        current.set(c.column, c);
      }
      const entries = inBatch.filter((e) => e.table === rf.table && e.pk === rf.pk);
      this.outbox.reject(batchID, rf.table, rf.pk, rf.code, rf.reason, rf.rule, at);
      // Writes made since the batch left follow her refused version,
      // which the server never took: the oldest of them now follows the
      // server's. The cells not written again since are put back as the
      // server holds them.
      const cols: string[] = [];
      const cells: Change[] = [];
      for (const e of entries) {
        if (cols.includes(e.column)) continue;
        const cur = current.get(e.column);
        if (this.outbox.reprev(rf.table, rf.pk, e.column, cur ? cur.version : ZERO)) continue; // written again since: her newer write stands
        cols.push(e.column);
        if (cur) cells.push(cur);
      }
      if (cols.length > 0) putBack(this.db, this.tables, rf.table, rf.pk, cells, cols, this.outbox.rowPending(rf.table, rf.pk));
      n += entries.length;
    }
    return n;
  }

  /** Go: handleFailure. Returns the error to throw. */
  private handleFailure(batch: Batch | null, err: unknown, rep: SyncReport): unknown {
    if (err instanceof ProtocolError && err.code === 'device_revoked') {
      this.wipe();
      return new RelaisError('device_revoked', 'cet appareil a été révoqué : ses données locales ont été effacées');
    }
    if (err instanceof ProtocolError && batch && CONTENT_CODES.has(err.code)) {
      const seen = new Set<string>();
      const refused: Refusal[] = [];
      for (const c of batch.changes) {
        const k = c.table + '\u0000' + c.pk;
        if (seen.has(k)) continue;
        seen.add(k);
        refused.push({ table: c.table, pk: c.pk, columns: [], code: err.code, reason: err.message, rule: String(err.details.rule ?? ''), current: [] });
      }
      this.applyLocal(() => {
        this.outbox.freeze(null, rowKeys(batch.changes));
        rep.rejected += this.setAside(batch.id, refused);
        // Entries of rows the batch no longer names (none, normally).
        this.db.run(this.schema.outbox.ack, [batch.id]);
      });
    }
    return err;
  }

  /** Go: restampPending. The server refused our clock as too far ahead;
   *  once the wall clock agrees with the server's again, pending writes
   *  are stamped again below the refused stamps, which never left. */
  private restampPending(refusal: ProtocolError): boolean {
    const serverMs = Number(refusal.details.server_time);
    const boundMs = Number(refusal.details.max_ahead_ms);
    if (!Number.isFinite(serverMs) || !Number.isFinite(boundMs) || boundMs <= 0) return false;
    const wall = this.wall();
    if (wall - serverMs > boundMs / 2) return false;
    this.db.tx(() => {
      // Every entry frozen first: its values are read now, its prev
      // worked out before the clock moves, and it is stamped alone.
      this.outbox.freeze(null, null);
      // The records hold what the device received and what the server
      // acknowledged, never a pending write.
      const received = maxHLC(this.db);
      const fromServer = fromMillis(serverMs);
      let clock = received > fromServer ? received : fromServer;
      const entries: { id: number; changes: Change[] }[] = [];
      for (const c of this.outbox.read(null)) {
        if (entries.length === 0 || entries[entries.length - 1].id !== c.entry) entries.push({ id: c.entry, changes: [] });
        entries[entries.length - 1].changes.push(c);
      }
      // A pending write whose prev is another pending write of ours must
      // point at that write's new stamp, or the server would see a
      // concurrent write where there is a succession.
      const renamed = new Map<string, bigint>();
      const key = (c: Change, h: bigint) => `${c.table}\u0000${c.pk}\u0000${c.column}\u0000${h}`;
      for (const e of entries) {
        const prevs: Record<string, [bigint, string]> = {};
        let newest = 0n;
        for (const c of e.changes) {
          let h = c.prev.hlc;
          if (c.prev.node === this.node) h = renamed.get(key(c, h)) ?? h;
          prevs[c.column] = [h, c.prev.node];
          if (h > newest) newest = h;
        }
        // A write must stay above the version it overwrote, or the merge
        // would let that version win back without a conflict.
        clock = next(clock > newest ? clock : newest, 0n, fromMillis(wall));
        for (const c of e.changes) renamed.set(key(c, c.version.hlc), clock);
        this.db.run('UPDATE _outbox SET hlc = ?, prev = ?, batch = NULL WHERE id = ?', [clock, goJSON(prevs), e.id]);
      }
      this.db.run('UPDATE _replica SET hlc = ? WHERE id = 1', [clock]);
    });
    return true;
  }

  /** Go: checkHistory and requeueOwnCells. */
  private checkHistory(resp: SyncResponse): boolean {
    if (!resp.history) return false;
    const known = this.db.value('SELECT history FROM _device WHERE id = 1') as string | null;
    if (known === resp.history) return false;
    const changed = !!known;
    const from = changed && resp.historyParent === known ? resp.historySharedSeq : 0n;
    this.applyLocal(() => {
      if (changed) {
        this.requeueOwnCells();
        this.db.run('UPDATE _device SET cursor = MIN(cursor, ?) WHERE id = 1', [from]);
      }
      this.db.run('UPDATE _device SET history = ? WHERE id = 1', [resp.history]);
    });
    if (changed) {
      resp.cursor = toTimestamp(this.db.value('SELECT cursor FROM _device WHERE id = 1'));
      resp.more = true;
    }
    return changed;
  }

  /** Go: requeueOwnCells: the cells this device wrote, and holds with its
   *  own version, back in the outbox with that version (prev none),
   *  except those already waiting: one frozen entry per row and
   *  version, in the order they were written. */
  private requeueOwnCells() {
    this.outbox.freeze(null, null);
    const waiting = new Set(
      this.db
        .all("SELECT t.name, o.pk, k.key FROM _outbox o JOIN _tables t ON t.id = o.tbl, json_each(o.vals) k WHERE o.vals IS NOT NULL")
        .map((r) => Object.values(r).join('\u0000')),
    );
    const own = cellsOfNode(this.db, this.tables, this.node).filter((c) => !waiting.has(`${c.table}\u0000${c.pk}\u0000${c.column}`));
    const rowOf = (c: Change) => c.table + '\u0000' + c.pk;
    own.sort((a, b) => compare(a.version, b.version) || compareNodes(rowOf(a), rowOf(b))); // stable
    for (let i = 0; i < own.length; ) {
      let j = i + 1;
      while (j < own.length && rowOf(own[j]) === rowOf(own[i]) && compare(own[j].version, own[i].version) === 0) j++;
      const group = own.slice(i, j);
      const prev: Record<string, [number, string]> = {};
      for (const c of group) prev[c.column] = [0, ''];
      this.db.run(
        `INSERT INTO _outbox (tbl, pk, mask, hlc, vals, prev)
         VALUES ((SELECT id FROM _tables WHERE name = ?), ?, 0, ?, json_object(${group.map(() => '?, ?').join(', ')}), ?)`,
        [own[i].table, own[i].pk, own[i].version.hlc, ...group.flatMap((c) => [c.column, c.value as unknown]), goJSON(prev)],
      );
      i = j;
    }
  }

  /** Go: wipe. Every table but the replica's identity, the device state
   *  (which records the revocation), the dictionaries of tables and
   *  columns, the web SDK's bookkeeping and the labels (reference data the app needs to show its login page again).
   *  Triggers are silenced, then the file is rebuilt (VACUUM). */
  wipe(): void {
    this.access.forget();
    // The table and column numbers stay: the capture triggers name
    // tables by them, and they hold nothing but the schema's names.
    const keep = new Set(['_device', '_replica', '_labels', '_tables', '_columns']);
    const tables = this.db
      .all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .map((r) => r.name)
      .filter((n) => !n.startsWith('sqlite_') && !n.startsWith('_migrations_') && !n.startsWith('_web_') && !keep.has(n));
    this.applyLocal(() => {
      for (const t of tables) this.db.run(`DELETE FROM ${quoteIdent(t)}`);
      this.db.run('UPDATE _replica SET hlc = 0, seq = 0 WHERE id = 1');
      this.db.run(
        `UPDATE _device SET server = NULL, email = NULL, user_id = NULL, access_token = NULL, refresh_token = NULL,
         cursor = 0, last_sync_at = NULL, last_error = ?, revoked_at = ? WHERE id = 1`,
        ['appareil révoqué : données locales effacées', Date.now()],
      );
      this.db.run('UPDATE _web_state SET user_name = NULL WHERE id = 1');
    });
    this.db.forget();
    this.db.run('VACUUM');
    this.emit('change', { tables: Object.keys(this.tables).sort(), source: 'wipe' });
    this.emitStatus();
  }

  // ---- refused changes (Go: Rejected, Retry, Dismiss) ----

  rejected(): Rejection[] {
    return this.db.all('SELECT id, tbl, pk, col, val, code, message, rule, rejected_at FROM _rejected ORDER BY rejected_at, id').map((r) => ({
      id: Number(r.id),
      table: r.tbl as string,
      pk: r.pk as string,
      column: r.col as string,
      value: r.val,
      code: r.code as string,
      reason: r.message as string,
      rule: r.rule as string,
      at: new Date(Number(r.rejected_at)),
    }));
  }

  private rejectedRow(id: number): { table: string; pk: string; values: Map<string, unknown> } {
    const r = this.db.get('SELECT tbl, pk FROM _rejected WHERE id = ?', [id]);
    if (!r) throw new RelaisError('not_found', 'aucune modification refusée ne porte ce numéro');
    const values = new Map<string, unknown>();
    for (const v of this.db.all('SELECT col, val FROM _rejected WHERE tbl = ? AND pk = ? ORDER BY id', [r.tbl, r.pk])) values.set(v.col as string, v.val);
    return { table: r.tbl as string, pk: r.pk as string, values };
  }

  retry(id: number, set: Record<string, unknown> = {}): void {
    try {
      this.db.tx(() => {
        const { table, pk, values } = this.rejectedRow(id);
        const t = this.tables[table];
        if (!t) throw new RelaisError('sql', `la table ${table} n'existe pas sur cet appareil`);
        for (const [col, v] of Object.entries(set)) {
          if (!(col in t)) throw new RelaisError('sql', `la table ${table} n'a pas de colonne ${col}`);
          values.set(col, v);
        }
        const exists = Number(this.db.value(`SELECT EXISTS (SELECT 1 FROM ${quoteIdent(table)} WHERE id = ?)`, [pk])) === 1;
        const deleted = String(values.get(DELETED_COLUMN)) === '1';
        values.delete(DELETED_COLUMN);
        const cols = [...values.keys()].filter((c) => c in t).sort();
        const args = cols.map((c) => values.get(c));
        if (deleted) {
          if (exists) this.db.run(`DELETE FROM ${quoteIdent(table)} WHERE id = ?`, [pk]);
        } else if (exists && cols.length > 0) {
          this.db.run(`UPDATE ${quoteIdent(table)} SET ${cols.map((c) => quoteIdent(c) + ' = ?').join(', ')} WHERE id = ?`, [...args, pk]);
        } else if (!exists) {
          this.db.run(`INSERT INTO ${quoteIdent(table)} (id${cols.map((c) => ', ' + quoteIdent(c)).join('')}) VALUES (?${', ?'.repeat(cols.length)})`, [pk, ...args]);
        }
        this.db.run('DELETE FROM _rejected WHERE tbl = ? AND pk = ?', [table, pk]);
      });
    } catch (e) {
      throw toRelaisError(e, this.rules);
    }
    this.emit('change', { tables: [], source: 'local' });
    this.emitStatus();
  }

  dismiss(id: number): void {
    this.db.tx(() => {
      const { table, pk } = this.rejectedRow(id);
      this.db.run('DELETE FROM _rejected WHERE tbl = ? AND pk = ?', [table, pk]);
    });
    this.emitStatus();
  }

  /** Go: Replica.Erase (domain.EraseOnDevice's statements, served). */
  erase(beneficiaireId: string): void {
    try {
      this.db.tx(() => {
        const n = this.db.run(this.schema.erase[0], [beneficiaireId]);
        if (n === 0) throw new RelaisError('not_found', "ce bénéficiaire n'existe pas sur cet appareil");
        for (const s of this.schema.erase.slice(1)) this.db.run(s, [beneficiaireId]);
      });
    } catch (e) {
      throw toRelaisError(e, this.rules);
    }
    this.emit('change', { tables: ['beneficiaire', 'rendez_vous'], source: 'local' });
    this.emitStatus();
  }

  close(): void {
    this.db.close();
  }
}

function isTokenRefusal(e: unknown): boolean {
  return e instanceof ProtocolError && (e.code === 'token_expired' || e.code === 'unauthorized');
}

/** Runs the migrations not yet run, converts a replica of the per-cell
 *  layout into version records, numbers the synced tables and columns,
 *  installs the triggers again and materialises values kept aside for
 *  new columns (Go: migrations.Up, replica.Init's upgradeCells,
 *  installTriggers, materialiseKeptAside), in one transaction. Returns the
 *  newest version the conversion met (0n: nothing converted). */
export function installSchema(db: Db, schema: DeviceSchema): bigint {
  return db.tx(() => {
    for (const m of schema.migrations) {
      const done = db.value('SELECT 1 FROM _web_migrations WHERE set_name = ? AND version = ?', [m.set, m.version]);
      if (done !== undefined) continue;
      db.script(m.up);
      db.run('INSERT INTO _web_migrations (set_name, version) VALUES (?, ?)', [m.set, m.version]);
    }
    const old = db.all<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'trigger' AND (name LIKE '\\_capture\\_%' ESCAPE '\\' OR name LIKE '\\_check\\_%' ESCAPE '\\')",
    );
    for (const t of old) db.run(`DROP TRIGGER ${quoteIdent(t.name)}`);
    const converted = upgradeCells(db, schema.tables);
    dictionary(db, schema.tables);
    for (const t of schema.triggers) db.script(t);
    // Values kept aside for columns this schema adds move into their
    // domain rows, captured by no trigger (Go: materialiseKeptAside).
    db.run('UPDATE _replica SET applying = 1 WHERE id = 1');
    materialiseKeptAside(db, schema.tables);
    db.run('UPDATE _replica SET applying = 0 WHERE id = 1');
    db.run('UPDATE _web_state SET schema_version = ?, schema_json = ? WHERE id = 1', [schema.version, JSON.stringify(schema)]);
    return converted;
  });
}

/** Go: replica.Init. The node id is chosen at first open, so the device
 *  can write before it ever logs in; the clock never starts below a
 *  version it holds. */
export function initReplica(db: Db, converted = 0n): string {
  return db.tx(() => {
    let node = db.value('SELECT node FROM _replica WHERE id = 1') as string | undefined;
    if (node === undefined) {
      node = uuidv7();
      db.run('INSERT INTO _replica (id, node) VALUES (1, ?)', [node]);
    }
    // The merge keeps the clock above every version it records; a
    // conversion raises it to the newest version it met.
    if (converted > 0n) db.run('UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1', [converted]);
    return node;
  });
}

export { parse };
