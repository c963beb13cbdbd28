// The SDK in Node, in this thread, on an in-memory SQLite: for tests,
// benchmarks and tools. Browsers use index.ts, which keeps the engine
// in a worker and the replica in OPFS.
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import type { Relais } from './api.js';
import { Client } from './client.js';
import { Db, type OO1DB } from './db.js';
import { Engine, type EngineOptions } from './engine.js';
import { serve } from './serve.js';

export * from './api.js';

// memdb databases of one name are shared within a process: each open gets its own.
let opened = 0;
let sqlite: Promise<{ oo1: { DB: new (name?: string, flags?: string, vfs?: string) => OO1DB } }> | null = null;

export interface NodeOpenOptions extends Partial<EngineOptions> {
  server: string;
}

/** Opens a replica in memory and returns the Relais API over it, and
 *  the engine itself (tests look inside). */
export async function openInProcess(opts: NodeOpenOptions): Promise<Relais & { engine: Engine }> {
  sqlite ??= (sqlite3InitModule as unknown as (o?: object) => Promise<{ oo1: { DB: new (name?: string, flags?: string, vfs?: string) => OO1DB } }>)({
    print: () => {},
    printErr: () => {},
  });
  const s = await sqlite;
  const db = new Db(new s.oo1.DB(`/relais-${++opened}`, 'c', 'memdb'));
  let client: Client | null = null;
  const engine = await Engine.open(db, { storage: 'memory', storageWarning: null, ...opts }, (event, payload) => client?.dispatch(event, payload));
  client = new Client(engine.node, {
    call: (method, args) => serve(engine, method, args),
    close: async () => engine.close(),
  });
  return Object.assign(client, { engine });
}
