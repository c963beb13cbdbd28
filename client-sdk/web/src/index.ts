// The Relais web SDK, for browsers: open() starts the worker that holds
// the replica (SQLite in OPFS) and the sync engine, and returns the API
// of api.ts. See WEBSDK_API.md in this directory.
import type { Events, OpenOptions, Relais } from './api.js';
import { Client, fromWireError, type WireError } from './client.js';

export * from './api.js';
export { uuidv7 } from './uuid.js';

export async function open(opts: OpenOptions = {}): Promise<Relais> {
  const url = opts.workerURL ?? new URL('./relais-worker.js', import.meta.url);
  const worker = new Worker(url, { type: 'module', name: 'relais' });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  let seq = 0;
  let client: Client | null = null;
  const opened = new Promise<string>((resolve, reject) => {
    worker.onmessage = (ev: MessageEvent) => {
      const m = ev.data as {
        opened?: string;
        openError?: WireError;
        id?: number;
        result?: unknown;
        error?: WireError;
        event?: keyof Events;
        payload?: unknown;
      };
      if (m.opened !== undefined) resolve(m.opened);
      else if (m.openError) reject(fromWireError(m.openError));
      else if (m.event) client?.dispatch(m.event, m.payload);
      else if (m.id !== undefined) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p?.reject(fromWireError(m.error));
        else p?.resolve(m.result);
      }
    };
    worker.onerror = (e) => reject(new Error(`relais: the worker failed to start: ${e.message}`));
  });
  worker.postMessage({ type: 'open', server: opts.server ?? location.origin, dbName: opts.dbName ?? 'relais', appVersion: opts.appVersion });
  const node = await opened;
  const call = (method: string, args: unknown[]) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, method, args });
    });
  client = new Client(node, {
    call,
    close: async () => {
      await call('close', []);
      worker.terminate();
    },
  });
  // status().online follows the browser's idea of the network as well as
  // the last exchange's outcome.
  if (typeof navigator !== 'undefined') void call('setOnline', [navigator.onLine]);
  addEventListener('online', () => void call('setOnline', [true]));
  addEventListener('offline', () => void call('setOnline', [false]));
  return client;
}
