// The worker that holds the replica and the sync engine in a browser.
// SQLite runs here because the OPFS VFS it uses ("opfs-sahpool", which
// needs no cross-origin isolation headers) works only in a worker, and
// so that a long sync never blocks the page.
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { RelaisError } from './api.js';
import { toWireError } from './client.js';
import { Db, type OO1DB } from './db.js';
import { Engine } from './engine.js';
import { serve } from './serve.js';

interface Init {
  type: 'open';
  server: string;
  dbName: string;
  appVersion?: string;
}

const MEMORY_WARNING =
  "Ce navigateur ne permet pas de garder les données sur l'appareil : ce qui est saisi sera perdu si la page est fermée avant une synchronisation. Utilisez un navigateur récent (Chrome, Edge, Firefox ou Safari à jour).";

let engine: Engine | null = null;
const post = (m: unknown) => (self as unknown as Worker).postMessage(m);

async function openDb(dbName: string): Promise<{ db: OO1DB; storage: 'opfs' | 'memory'; warning: string | null }> {
  type S = {
    oo1: { DB: new (name?: string, flags?: string) => OO1DB };
    installOpfsSAHPoolVfs?: (o: { name: string }) => Promise<{ OpfsSAHPoolDb: new (name: string) => OO1DB }>;
  };
  const sqlite3 = (await (sqlite3InitModule as unknown as (o?: object) => Promise<S>)({ print: () => {}, printErr: console.error })) as S;
  const hasOPFS = typeof navigator !== 'undefined' && !!navigator.storage?.getDirectory;
  if (hasOPFS && sqlite3.installOpfsSAHPoolVfs) {
    try {
      const pool = await sqlite3.installOpfsSAHPoolVfs({ name: 'relais' });
      // Ask the browser not to evict the replica under storage pressure.
      await navigator.storage.persist?.().catch(() => false);
      return { db: new pool.OpfsSAHPoolDb(`/${dbName}.sqlite3`), storage: 'opfs', warning: null };
    } catch (e) {
      // The pool's files are locked by another tab of the app: opening a
      // second replica in memory would lose what is typed here.
      throw new RelaisError('busy', `L'application est déjà ouverte dans un autre onglet ou une autre fenêtre : fermez-la, puis rechargez cette page. (${(e as Error).message})`);
    }
  }
  console.warn('relais: no OPFS in this browser; the replica is in memory and lost at reload');
  return { db: new sqlite3.oo1.DB(), storage: 'memory', warning: MEMORY_WARNING };
}

self.onmessage = async (ev: MessageEvent) => {
  const m = ev.data as { id: number; method: string; args: unknown[] } | Init;
  if ('type' in m && m.type === 'open') {
    try {
      const { db, storage, warning } = await openDb(m.dbName);
      engine = await Engine.open(new Db(db), { server: m.server, appVersion: m.appVersion, storage, storageWarning: warning }, (event, payload) =>
        post({ event, payload }),
      );
      post({ opened: engine.node });
    } catch (e) {
      post({ openError: toWireError(e) });
    }
    return;
  }
  const call = m as { id: number; method: string; args: unknown[] };
  if (!engine) {
    post({ id: call.id, error: toWireError(new RelaisError('internal', 'replica not open')) });
    return;
  }
  if (call.method === 'close') {
    engine.close();
    post({ id: call.id, result: undefined });
    return;
  }
  try {
    post({ id: call.id, result: await serve(engine, call.method, call.args) });
  } catch (e) {
    post({ id: call.id, error: toWireError(e) });
  }
};
