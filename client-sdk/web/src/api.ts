// The public types of the Relais web SDK. The application (the
// conseillère's app at /app/) codes against exactly these; the engine
// behind them runs in a dedicated worker in a browser and in-process in
// Node (tests, benchmarks). See WEBSDK_API.md for the contract in prose.

/** Options of open(). Every field is optional. */
export interface OpenOptions {
  /** Base URL of the Relais server, e.g. "https://relais.example.fr".
   *  Default: the page's origin (location.origin). */
  server?: string;
  /** Name of the replica's database in OPFS. One name, one device:
   *  a second name on the same browser is a second device. Default "relais". */
  dbName?: string;
  /** Reported to the server for the coordinators' fleet page. */
  appVersion?: string;
  /** Where the worker bundle is (browser only). Default: relais-worker.js
   *  next to the module that imported the SDK. */
  workerURL?: string | URL;
}

/** The signed-in person, as the server described her at login. */
export interface User {
  id: string;
  role: 'conseiller' | 'coordinateur' | 'admin' | string;
  email: string;
  /** Her name when an administrator gave one; null otherwise. */
  name: string | null;
}

/** What the SDK knows of its sync state (cheap: no network). */
export interface Status {
  /** This device's id (its node id in every version it writes). */
  node: string;
  /** Local changes (cells) waiting to be sent. */
  pending: number;
  /** Refused changes kept on the device (see rejected()). */
  rejected: number;
  /** End of the last sync that completed, null if never. */
  lastSync: Date | null;
  /** The last sync's error, in French for the conseillère; null after a success. */
  lastError: string | null;
  /** navigator.onLine as last seen, and false after a network failure until a success. */
  online: boolean;
  /** A sync is running now. */
  syncing: boolean;
  /** The device holds tokens (false after logout, revocation or an ended session). */
  loggedIn: boolean;
  /** The server revoked this device: its data was erased. */
  revoked: boolean;
  /** Null before the first login. */
  user: User | null;
  /** Where the replica lives: 'opfs' (persistent) or 'memory' (lost at reload; see storageWarning). */
  storage: 'opfs' | 'memory';
  /** In French, set when storage is 'memory' in a browser. */
  storageWarning: string | null;
}

/** What one sync() did. */
export interface SyncReport {
  exchanges: number;
  /** Local changes acknowledged by the server. */
  pushed: number;
  /** Cells received and applied. */
  pulled: number;
  /** Of our changes, those that met a concurrent write (the server logs them). */
  conflicts: number;
  /** Of our changes, those the server refused (now in rejected()). */
  rejected: number;
  /** The device's clock had been refused as too far ahead; pending writes were stamped again. */
  restamped: boolean;
  /** The server was restored from a backup; everything was pulled again. */
  serverRestored: boolean;
  bytesUp: number;
  bytesDown: number;
}

/** Progress of a running sync, sent after each exchange. */
export interface Progress {
  exchanges: number;
  pushed: number;
  pulled: number;
  bytesUp: number;
  bytesDown: number;
  /** Local changes waiting when the sync began. */
  outbox: number;
  /** The server has more to send (a long first sync). */
  more: boolean;
  /** Set when an exchange failed on the network and will be tried again. */
  retryInMs?: number;
  retryError?: string;
}

/** One refused change: her value, and the server's French reason. */
export interface Rejection {
  id: number;
  table: string;
  pk: string;
  column: string;
  value: unknown;
  /** forbidden_scope, invalid_row, bad_value… */
  code: string;
  /** In French. */
  reason: string;
  /** The domain rule broken (invalid_row), or "". */
  rule: string;
  at: Date;
}

/** A row read by query(): column name to value. Integers beyond
 *  2^53 come back as bigint; others as number. */
export type Row = Record<string, unknown>;
/** Parameters bound to ? (array) or to :name/$name/@name (object). */
export type Params = unknown[] | Record<string, unknown>;

export interface ChangeEvent {
  /** Tables whose rows changed. */
  tables: string[];
  /** 'local': exec() and friends; 'sync': pulled or put back by a refusal; 'wipe': revocation erased everything. */
  source: 'local' | 'sync' | 'wipe';
}

export interface Events {
  change: ChangeEvent;
  status: Status;
  progress: Progress;
}

/** An open replica. All methods are safe to call offline except
 *  login() and sync(). */
export interface Relais {
  /** This device's id. */
  readonly node: string;
  login(email: string, password: string, deviceName?: string): Promise<User>;
  /** Forgets the tokens and the person; local data stays (a later login
   *  of the same account syncs it). */
  logout(): Promise<void>;
  /** Exchanges with the server until the outbox is empty and the
   *  server has nothing more. Rejects with a RelaisError. */
  sync(): Promise<SyncReport>;
  /** Syncs now, when the browser says the network is back, after each
   *  local write (debounced) and every intervalMs (default 60 s), with
   *  exponential backoff after failures. Returns a function that stops it. */
  startAutoSync(opts?: { intervalMs?: number }): () => void;
  stopAutoSync(): void;
  status(): Promise<Status>;
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]>;
  /** One write statement, captured by the triggers; a broken domain
   *  rule rejects with RelaisError code 'rule'. */
  exec(sql: string, params?: Params): Promise<{ changes: number }>;
  /** Several statements in one transaction: all or nothing. */
  transaction(statements: { sql: string; params?: Params }[]): Promise<{ changes: number }>;
  rejected(): Promise<Rejection[]>;
  /** Writes the refused row again with her values, corrected by set
   *  (column → value); the device's rules judge it now. */
  retry(id: number, set?: Record<string, unknown>): Promise<void>;
  /** Gives the refused row up; the server's version stays. */
  dismiss(id: number): Promise<void>;
  /** Erases a beneficiary (GDPR): personal values cleared here, and
   *  everywhere at the next sync. */
  erase(beneficiaireId: string): Promise<void>;
  /** The domain rules the device checks at write time (the same text as
   *  the server's): name, table, the columns each reads, French message.
   *  An app shows a RelaisError's message next to rule.columns' fields. */
  rules(): Promise<RuleInfo[]>;
  on<K extends keyof Events>(event: K, cb: (e: Events[K]) => void): () => void;
  /** A new UUIDv7 (lower case), for the id of a new row. */
  uuid(): string;
  close(): Promise<void>;
}

/** One domain rule (Go: domain.Rules()). */
export interface RuleInfo {
  name: string;
  table: string;
  columns: string[];
  /** In French. */
  message: string;
}

/** Every error the SDK rejects with. message is in French where a
 *  conseillère reads it (rules, sync failures). */
export class RelaisError extends Error {
  /** 'rule' (a domain rule, see rule), 'sql' (a malformed statement or
   *  a check of the capture triggers), 'not_logged_in', 'offline', or a
   *  server code (bad_credentials, device_revoked, clock_ahead,
   *  rate_limited, token_expired…). */
  code: string;
  /** For code 'rule': the rule's stable name (duree_activite…). */
  rule?: string;
  /** For code 'rule': {table, columns} of the rule; for server codes,
   *  the server's details (retry_after_seconds…). */
  details?: Record<string, unknown>;
  constructor(code: string, message: string, rule?: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'RelaisError';
    this.code = code;
    if (rule !== undefined) this.rule = rule;
    if (details !== undefined) this.details = details;
  }
}
