// Upgrade in place: a browser that holds a replica of the per-cell layout
// (_cells) opens it with this SDK, which converts it into version
// records as the Go SDK converts its own (the same bytes:
// client-sdk/device/testdata/upgrade_vectors.json, written by go test
// ./client-sdk/device -run TestUpgradeVectors -update), then syncs it
// with a server upgraded from the same era, nothing lost. The replicas
// are the fixtures written by the per-cell layout's code
// (internal/upgrade/testdata), loaded into memory as a browser's OPFS
// file would be opened.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { Db, type OO1DB } from '../src/db.js';
import { Engine, installSchema, type DeviceSchema } from '../src/engine.js';
import { openInProcess } from '../src/node.js';
import { pkText } from '../src/rows.js';
import { startServer, type TestServer } from './harness.js';

const fixtures = '../../internal/upgrade/testdata';
const vectors = JSON.parse(readFileSync('../device/testdata/upgrade_vectors.json', 'utf8')) as { cases: Record<string, Record<string, string[]>> };

// The queries the Go test dumps a converted replica with (vectors_internal_test.go).
const queries: Record<string, string> = {
  records: 'SELECT tbl, hex(pk), owner, seq, deleted, CAST(hlc AS TEXT), hex(clocks), extra FROM _rows ORDER BY tbl, pk',
  tables: 'SELECT id, name FROM _tables ORDER BY id',
  columns: 'SELECT tbl, bit, name FROM _columns ORDER BY tbl, bit',
  nodes: 'SELECT id, node FROM _nodes ORDER BY id',
  outbox: 'SELECT id, tbl, pk, mask, CAST(hlc AS TEXT), vals, prev, hex(base), batch FROM _outbox ORDER BY id',
  rejected: 'SELECT id, tbl, pk, col, quote(val), code FROM _rejected ORDER BY id',
  clock: 'SELECT CAST(hlc AS TEXT) FROM _replica',
  cells: "SELECT name FROM sqlite_master WHERE name = '_cells'",
};

interface Sqlite {
  oo1: { DB: new (name?: string, flags?: string) => OO1DB & { pointer: number } };
  wasm: { allocFromTypedArray(a: Uint8Array): number };
  capi: { sqlite3_deserialize(db: number, schema: string, data: number, size: number, buf: number, flags: number): number };
}

let sqlite: Sqlite;
let server: TestServer;
before(async () => {
  sqlite = (await (sqlite3InitModule as unknown as (o?: object) => Promise<Sqlite>)({ print: () => {}, printErr: () => {} })) as Sqlite;
  // A server data directory of the same era (converted when it starts).
  server = await startServer({ prepare: (_bin, data) => copyFileSync(join(fixtures, 'server/relais.db'), join(data, 'relais.db')) });
});
after(async () => {
  await server?.stop();
});

/** The file as a per-cell web replica holds it: the fixture's bytes in
 *  memory, with the web SDK's record of the migrations it ran. */
function perCellReplica(name: string): Db {
  const bytes = new Uint8Array(readFileSync(join(fixtures, 'device', name)));
  const raw = new sqlite.oo1.DB(':memory:', 'c');
  const rc = sqlite.capi.sqlite3_deserialize(raw.pointer, 'main', sqlite.wasm.allocFromTypedArray(bytes), bytes.length, bytes.length, 1 | 2);
  assert.equal(rc, 0, 'deserialize');
  const db = new Db(raw);
  db.script(`CREATE TABLE _web_migrations (set_name TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (set_name, version));
    INSERT INTO _web_migrations SELECT 'replica', version_id FROM _migrations_replica WHERE version_id > 0;
    INSERT INTO _web_migrations SELECT 'domain', version_id FROM _migrations_domain WHERE version_id > 0;
    INSERT INTO _web_migrations SELECT 'device', version_id FROM _migrations_device WHERE version_id > 0;`);
  assert.equal(db.value("SELECT COUNT(*) FROM sqlite_master WHERE name = '_cells'"), 1);
  return db;
}

const lines = (db: Db, q: string) => db.all(q).map((r) => Object.values(r).map((v) => (v === null ? 'NULL' : String(v))).join(' | '));

test('a per-cell replica is converted on open into the version records the Go SDK writes', async () => {
  for (const [name, want] of Object.entries(vectors.cases)) {
    const db = perCellReplica(name);
    const engine = await Engine.open(db, { server: server.url, storage: 'memory', storageWarning: null }, () => {});
    for (const [what, q] of Object.entries(queries)) assert.deepEqual(lines(db, q), want[what], `${name}: ${what}`);
    engine.close();
  }
});

test('a converted replica syncs: its pending writes reach the server, its refusal stays listed', async () => {
  const db = perCellReplica('tablette-claire.db');
  const tablet = await Engine.open(db, { server: server.url, storage: 'memory', storageWarning: null, retryForMs: 2000 }, () => {});
  const before = tablet.status();
  assert.ok(before.pending > 0, 'the fixture has writes waiting');
  assert.equal(before.rejected, 1);
  const newActivity = '01a23598-3637-787c-b02b-3530d9d90ccf';
  const deleted = '01a23598-35ef-751e-b3f9-1b9114653ac4';
  const edited = '01a23598-35f6-7dec-b06d-9b0609cb340c';
  const mine = tablet.query('SELECT commune, duree FROM activite WHERE id = ?', [newActivity]);
  assert.deepEqual({ ...mine[0] }, { commune: 'Château-Gontier', duree: 120 });

  await tablet.login('claire@exemple.fr', 'motdepasse-fixture');
  const rep = await tablet.sync();
  assert.ok(rep.pushed >= before.pending, `pushed ${rep.pushed} of ${before.pending}`);
  assert.equal(tablet.status().pending, 0);
  assert.equal(tablet.status().rejected, 1, 'the refused edit stays listed');
  // Acknowledged: the versions of her writes are now in the records.
  assert.ok(Number(db.value('SELECT COUNT(*) FROM _rows r JOIN _tables t ON t.id = r.tbl WHERE t.name = ? AND r.pk = unhex(replace(?, \'-\', \'\'))', ['activite', newActivity])) === 1);

  // Another tablet of hers, new, receives what the converted one had.
  const other = await openInProcess({ server: server.url, retryForMs: 2000 });
  await other.login('claire@exemple.fr', 'motdepasse-fixture');
  await other.sync();
  assert.deepEqual({ ...(await other.query('SELECT commune, duree FROM activite WHERE id = ?', [newActivity]))[0] }, { commune: 'Château-Gontier', duree: 120 });
  assert.equal((await other.query('SELECT COUNT(*) AS n FROM activite WHERE id = ?', [deleted]))[0].n, 0);
  assert.equal((await other.query('SELECT commune FROM beneficiaire WHERE id = ?', [edited]))[0].commune, 'Évron');
  // And the converted one keeps syncing both ways.
  await other.exec('UPDATE activite SET duree = 90 WHERE id = ?', [newActivity]);
  await other.sync();
  await tablet.sync();
  assert.equal(tablet.query('SELECT duree FROM activite WHERE id = ?', [newActivity])[0].duree, 90);
  await other.close();
  tablet.close();
});

test('a column a later schema adds gets the values a converted replica kept aside for it', async () => {
  // This tablet synced with a newer server (activite.canal); the
  // conversion kept the value in the row's record.
  const db = perCellReplica('tablette-ancienne.db');
  const engine = await Engine.open(db, { server: server.url, storage: 'memory', storageWarning: null }, () => {});
  const aside = db.get('SELECT pk, extra FROM _rows WHERE extra LIKE ? AND deleted = 0', ['%"canal"%'])!;
  const id = pkText(aside.pk);
  assert.equal(JSON.parse(aside.extra as string).canal, 'visio');
  const outbox = lines(db, queries.outbox);
  // The app's next release adds the column.
  const doc = JSON.parse(db.value('SELECT schema_json FROM _web_state WHERE id = 1') as string) as DeviceSchema;
  doc.migrations.push({ set: 'domain', version: 9999, up: 'ALTER TABLE activite ADD COLUMN canal TEXT;' });
  doc.tables.activite.canal = 'TEXT';
  doc.version = 'avec-canal';
  installSchema(db, doc);
  assert.equal(db.value('SELECT canal FROM activite WHERE id = ?', [id]), 'visio');
  const extra = db.value('SELECT extra FROM _rows WHERE pk = ?', [aside.pk]) as string | null;
  assert.ok(extra === null || !('canal' in JSON.parse(extra)), `still aside: ${extra}`);
  assert.deepEqual(lines(db, queries.outbox), outbox, 'nothing captured');
  engine.close();
});

test("a browser's replica of the per-cell web SDK is converted on open, nothing lost, and syncs", async () => {
  // Its own server, of the same era as the fixture's sync.
  const srv = await startServer({ prepare: (_bin, data) => copyFileSync(join(fixtures, 'server/relais.db'), join(data, 'relais.db')) });
  try {
    const bytes = new Uint8Array(readFileSync('test/testdata/tablette-web-claire.db'));
    const raw = new sqlite.oo1.DB(':memory:', 'c');
    assert.equal(sqlite.capi.sqlite3_deserialize(raw.pointer, 'main', sqlite.wasm.allocFromTypedArray(bytes), bytes.length, bytes.length, 1 | 2), 0);
    const db = new Db(raw);
    const domain = (q: string) => db.all(q).map((r) => ({ ...r }));
    const before = {
      activite: domain('SELECT * FROM activite ORDER BY id'),
      beneficiaire: domain('SELECT * FROM beneficiaire ORDER BY id'),
      outbox: Number(db.value('SELECT COUNT(*) FROM _outbox')),
    };
    assert.equal(before.outbox, 8);
    const tablet = await Engine.open(db, { server: srv.url, storage: 'memory', storageWarning: null, retryForMs: 2000 }, () => {});
    assert.equal(db.value("SELECT COUNT(*) FROM sqlite_master WHERE name = '_cells'"), 0);
    assert.deepEqual(domain('SELECT * FROM activite ORDER BY id'), before.activite, 'domain rows as they were');
    assert.deepEqual(domain('SELECT * FROM beneficiaire ORDER BY id'), before.beneficiaire);
    assert.equal(tablet.status().pending, 8, 'every pending cell kept');
    assert.ok(Number(db.value('SELECT COUNT(*) FROM _rows')) > 0);

    await tablet.login('claire@exemple.fr', 'motdepasse-fixture');
    const rep = await tablet.sync();
    assert.equal(rep.pushed, 8);
    assert.equal(rep.rejected, 0);
    assert.equal(tablet.status().pending, 0);

    const other = await openInProcess({ server: srv.url, retryForMs: 2000 });
    await other.login('claire@exemple.fr', 'motdepasse-fixture');
    await other.sync();
    const got = (await other.query('SELECT id, duree, commune FROM activite ORDER BY id')).map((r) => ({ ...r }));
    assert.deepEqual(got, [
      { id: '01a23598-35ef-751a-a698-d824c499a2ca', duree: 100, commune: 'Laval' },
      { id: '01a23598-aaaa-7000-8000-00000000eb01', duree: 75, commune: 'Ernée' },
    ]);
    await other.close();
    tablet.close();
  } finally {
    await srv.stop();
  }
});
