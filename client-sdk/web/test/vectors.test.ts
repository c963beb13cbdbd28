// The shared vectors, written by the Go implementation
// (syncproto/testdata/vectors.json: go test ./syncproto -run TestVectors
// -update; client-sdk/device/testdata/apply_vectors.json: go test
// ./client-sdk/device -run TestApplyVectors -update). Both SDKs' tests
// read the same files, so the two cannot disagree on a winner, a clock
// reading or the replica a pull leaves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { decodeColumns } from '../src/columns.js';
import { next } from '../src/hlc.js';
import { parse, stringify } from '../src/json.js';
import { openInProcess } from '../src/node.js';
import { decodeResponse } from '../src/proto.js';
import { compare, decide } from '../src/version.js';
import { startServer, type TestServer } from './harness.js';

const ver = (v: { hlc: string; node: string }) => ({ hlc: BigInt(v.hlc), node: v.node });

test('merge rule: decide and compare agree with syncproto on every vector', () => {
  const file = JSON.parse(readFileSync('../../syncproto/testdata/vectors.json', 'utf8'));
  assert.ok(file.decide.length >= 100);
  for (const [i, v] of file.decide.entries()) {
    const d = decide(ver(v.held), ver(v.incoming), ver(v.prev));
    assert.deepEqual({ outcome: d.outcome, concurrent: d.concurrent }, { outcome: v.outcome, concurrent: v.concurrent }, `decide vector ${i}`);
    assert.equal(compare(ver(v.incoming), ver(v.held)), v.compare, `compare vector ${i}`);
  }
});

test('clock rule: next agrees with syncproto.Next on every vector', () => {
  const file = JSON.parse(readFileSync('../../syncproto/testdata/vectors.json', 'utf8'));
  for (const [i, v] of file.next.entries()) {
    assert.equal(next(BigInt(v.last), BigInt(v.received), BigInt(v.physical)), BigInt(v.next), `next vector ${i}`);
  }
});

interface ApplyCase {
  pages: unknown[];
  column_pages: string[];
  rows: Record<string, unknown>[] | null;
  cells: { tbl: string; pk: string; col: string; val: unknown; type: string; hlc: string; node: string }[] | null;
  records: string[] | null;
  tables: string[] | null;
  columns: string[] | null;
  nodes: string[] | null;
}

// The queries the Go test dumps a replica with (vectors_internal_test.go).
const vectorQueries = {
  records: 'SELECT tbl, hex(pk), owner, seq, deleted, CAST(hlc AS TEXT), hex(clocks), extra FROM _rows ORDER BY tbl, pk',
  tables: 'SELECT id, name FROM _tables WHERE id IN (SELECT tbl FROM _rows) ORDER BY id',
  columns: 'SELECT tbl, bit, name FROM _columns WHERE tbl IN (SELECT tbl FROM _rows) ORDER BY tbl, bit',
  nodes: 'SELECT id, node FROM _nodes ORDER BY id',
};

const applyCases = (parse(readFileSync('../device/testdata/apply_vectors.json', 'utf8')) as unknown as { cases: ApplyCase[] }).cases;

test('column form: every page decodes to the changes of its JSON form', () => {
  let n = 0;
  for (const [i, c] of applyCases.entries()) {
    c.pages.forEach((page, p) => {
      const json = decodeResponse(stringify(page));
      const cols = decodeColumns(new Uint8Array(Buffer.from(c.column_pages[p], 'base64')));
      assert.deepEqual(cols.changes, json.changes, `case ${i} page ${p}`);
      assert.equal(cols.cursor, json.cursor);
      n += json.changes.length;
    });
  }
  assert.ok(n > 100);
  // Strictness: a truncated page or one with a byte left over is refused.
  const page = new Uint8Array(Buffer.from(applyCases[0].column_pages[0], 'base64'));
  assert.throws(() => decodeColumns(page.subarray(0, page.length - 1)), /malformed|column/);
  assert.throws(() => decodeColumns(new Uint8Array([...page, 0])), /malformed|column/);
});

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('device apply: pulled pages leave the replica the Go SDK leaves', async () => {
  const relais = await openInProcess({ server: server.url });
  const { engine } = relais;
  const db = engine.db;
  // The dictionaries as a fresh replica has them: every synced table and
  // column, numbered at open.
  const lastTable = Number(db.value('SELECT MAX(id) FROM _tables'));
  const lastColumn = Number(db.value('SELECT MAX(rowid) FROM _columns'));
  const lines = (q: string) => db.all(q).map((r) => Object.values(r).map((v) => (v === null ? 'NULL' : String(v))).join(' | '));
  for (const [i, c] of applyCases.entries()) {
    // A fresh replica per case: empty what the apply writes, with the
    // capture triggers silenced (a DELETE would otherwise be captured).
    db.run('UPDATE _replica SET applying = 1');
    db.run('DELETE FROM activite');
    db.run('DELETE FROM _rows');
    db.run('DELETE FROM _nodes');
    db.run('DELETE FROM _tables WHERE id > ?', [lastTable]);
    db.run('DELETE FROM _columns WHERE rowid > ?', [lastColumn]);
    db.run('DELETE FROM _outbox');
    db.run('UPDATE _replica SET applying = 0');
    for (const page of c.pages) engine.applyAnswer(null, decodeResponse(stringify(page)));
    const rows = db.all('SELECT id, type, duree, commune FROM activite ORDER BY id').map((r) => ({ ...r }));
    assert.deepEqual(rows, c.rows ?? [], `case ${i}: domain rows`);
    assert.deepEqual(lines(vectorQueries.records), c.records ?? [], `case ${i}: version records`);
    assert.deepEqual(lines(vectorQueries.tables), c.tables ?? [], `case ${i}: tables`);
    assert.deepEqual(lines(vectorQueries.columns), c.columns ?? [], `case ${i}: columns`);
    assert.deepEqual(lines(vectorQueries.nodes), c.nodes ?? [], `case ${i}: nodes`);
  }
  await relais.close();
});
