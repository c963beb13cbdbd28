// The Relais object the application holds. It forwards every call to
// the engine, which lives in a dedicated worker in browsers (worker.ts)
// or in this thread in Node (node.ts), and runs automatic sync.
import type { Events, Params, Progress, Rejection, Relais, Row, RuleInfo, Status, SyncReport, User } from './api.js';
import { RelaisError } from './api.js';
import { uuidv7 } from './uuid.js';

/** The engine's methods, as the client calls them. */
export interface Backend {
  call(method: string, args: unknown[]): Promise<unknown>;
  close(): Promise<void>;
}

type Listener = (e: unknown) => void;

export class Client implements Relais {
  private listeners = new Map<keyof Events, Set<Listener>>();
  private auto: { stop: () => void; kick: () => void } | null = null;

  constructor(
    readonly node: string,
    private backend: Backend,
  ) {}

  /** Called by the backend for each event the engine emits. */
  dispatch(event: keyof Events, payload: unknown) {
    if (event === 'change' && (payload as Events['change']).source === 'local') this.auto?.kick();
    for (const cb of this.listeners.get(event) ?? []) {
      try {
        cb(payload);
      } catch (e) {
        console.error('relais: an event listener failed', e);
      }
    }
  }

  private call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.backend.call(method, args) as Promise<T>;
  }

  login(email: string, password: string, deviceName?: string): Promise<User> {
    return this.call('login', email, password, deviceName);
  }
  logout(): Promise<void> {
    this.stopAutoSync();
    return this.call('logout');
  }
  sync(): Promise<SyncReport> {
    return this.call('sync');
  }
  status(): Promise<Status> {
    return this.call<Status>('status').then(reviveStatus);
  }
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.call('query', sql, params);
  }
  exec(sql: string, params?: Params): Promise<{ changes: number }> {
    return this.call('exec', sql, params);
  }
  transaction(statements: { sql: string; params?: Params }[]): Promise<{ changes: number }> {
    return this.call('transaction', statements);
  }
  rejected(): Promise<Rejection[]> {
    return this.call<Rejection[]>('rejected').then((list) => list.map((r) => ({ ...r, at: new Date(r.at) })));
  }
  retry(id: number, set?: Record<string, unknown>): Promise<void> {
    return this.call('retry', id, set);
  }
  dismiss(id: number): Promise<void> {
    return this.call('dismiss', id);
  }
  erase(beneficiaireId: string): Promise<void> {
    return this.call('erase', beneficiaireId);
  }
  rules(): Promise<RuleInfo[]> {
    return this.call('rules');
  }
  uuid(): string {
    return uuidv7();
  }
  on<K extends keyof Events>(event: K, cb: (e: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(cb as Listener);
    return () => set!.delete(cb as Listener);
  }

  /** Syncs now, when the network comes back, shortly after local writes
   *  and every intervalMs; after a failure, waits twice as long each
   *  time (up to 5 min) before trying again, until a sync succeeds. */
  startAutoSync(opts: { intervalMs?: number } = {}): () => void {
    this.stopAutoSync();
    const interval = opts.intervalMs ?? 60_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let running = false;
    let stopped = false;
    const schedule = (ms: number) => {
      if (stopped) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(run, ms);
    };
    const run = async () => {
      if (stopped || running) return;
      running = true;
      try {
        await this.sync();
        failures = 0;
        schedule(interval);
      } catch (e) {
        const code = (e as RelaisError).code;
        if (code === 'device_revoked') {
          stopped = true; // the replica is wiped: nothing to sync any more
        } else if (code === 'not_logged_in' || code === 'unauthorized' || code === 'token_expired') {
          schedule(interval); // waits for her to log in again, without hammering the server
        } else {
          failures++;
          schedule(Math.min(5 * 60_000, 5_000 * 2 ** Math.min(failures - 1, 10)));
        }
      } finally {
        running = false;
      }
    };
    const online = () => {
      failures = 0;
      void this.call('setOnline', true);
      schedule(0);
    };
    const offline = () => void this.call('setOnline', false);
    const g = globalThis as unknown as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    g.addEventListener?.('online', online);
    g.addEventListener?.('offline', offline);
    const stop = () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      g.removeEventListener?.('online', online);
      g.removeEventListener?.('offline', offline);
      if (this.auto?.stop === stop) this.auto = null;
    };
    this.auto = { stop, kick: () => failures === 0 && schedule(2000) };
    schedule(0);
    return stop;
  }

  stopAutoSync(): void {
    this.auto?.stop();
  }

  async close(): Promise<void> {
    this.stopAutoSync();
    await this.backend.close();
  }
}

function reviveStatus(s: Status): Status {
  return { ...s, lastSync: s.lastSync ? new Date(s.lastSync) : null };
}

/** What crosses postMessage for an error. */
export interface WireError {
  code: string;
  message: string;
  rule?: string;
  details?: Record<string, unknown>;
}

export function toWireError(e: unknown): WireError {
  if (e instanceof RelaisError) return { code: e.code, message: e.message, rule: e.rule, details: e.details };
  return { code: 'internal', message: String((e as Error)?.message ?? e) };
}

export function fromWireError(w: WireError): RelaisError {
  return new RelaisError(w.code, w.message, w.rule, w.details);
}

export type { Progress };
