// The SDK against the real server binary on 127.0.0.1: two tablets of
// one conseillère (two SDK instances in Node, sqlite-wasm in memory)
// log in, write, push, pull, meet a refusal and a revocation.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openInProcess, RelaisError, type Progress } from '../src/node.js';
import { startServer, type TestServer } from './harness.js';

let server: TestServer;
before(async () => {
  server = await startServer();
  server.addUser('camille@exemple.fr', 'un-mot-de-passe', 'conseiller', 'Camille Martin');
});
after(async () => {
  await server?.stop();
});

const activity = (id: string, duree: number) => ({
  sql: 'INSERT INTO activite (id, type, date, duree, type_lieu, commune) VALUES (?, ?, ?, ?, ?, ?)',
  params: [id, 'individuel', '2026-11-30', duree, 'domicile', 'Laval'],
});

test('login, push, pull, refusal and revocation against the real server', async () => {
  const a = await openInProcess({ server: server.url, retryForMs: 2000, pageLimit: 2 });
  const b = await openInProcess({ server: server.url, retryForMs: 2000, pageLimit: 2 });

  // Offline-first: writing before any login works and is kept.
  const first = a.uuid();
  await a.exec(activity(first, 45).sql, activity(first, 45).params);
  assert.equal((await a.status()).pending > 0, true);
  await assert.rejects(a.sync(), (e: RelaisError) => e.code === 'not_logged_in');

  await assert.rejects(a.login('camille@exemple.fr', 'mauvais', 'Tablette de Camille'), (e: RelaisError) => e.code === 'bad_credentials' && /mot de passe/.test(e.message));
  const user = await a.login('camille@exemple.fr', 'un-mot-de-passe', 'Tablette de Camille');
  assert.equal(user.email, 'camille@exemple.fr');
  assert.equal(user.role, 'conseiller');
  assert.equal(user.name, 'Camille Martin');
  await b.login('camille@exemple.fr', 'un-mot-de-passe', 'Téléphone de Camille');
  // The row written before the device knew its account names no owner:
  // she makes it hers (the server shows a conseiller only her own rows).
  await a.exec('UPDATE activite SET mediateur_id = ? WHERE id = ?', [user.id, first]);

  // A domain rule refuses at write time, in French, and nothing is saved.
  await assert.rejects(a.exec(activity(a.uuid(), 0).sql, activity(a.uuid(), 0).params), (e: RelaisError) => {
    assert.equal(e.code, 'rule');
    assert.equal(e.rule, 'duree_activite');
    assert.match(e.message, /durée/i);
    return true;
  });

  const ids = [first];
  const stmts = [];
  for (let i = 0; i < 5; i++) {
    const id = a.uuid();
    ids.push(id);
    stmts.push(activity(id, 30 + i));
  }
  await a.transaction(stmts);
  const changes: string[][] = [];
  b.on('change', (e) => changes.push(e.tables));
  const pushed = await a.sync();
  assert.ok(pushed.pushed >= 6 * 5, `pushed ${pushed.pushed} cells`);
  assert.equal((await a.status()).pending, 0);
  assert.equal((await a.status()).lastError, null);

  // B pulls in pages of 2 cells (pipelined), with progress in cells and bytes.
  const progress: Progress[] = [];
  b.on('progress', (p) => progress.push(p));
  const pulled = await b.sync();
  assert.ok(pulled.pulled >= 30, `pulled ${pulled.pulled}`);
  // A row travels whole (the server's version records, issue 13): pages of
  // 2 cells bring one activity each, so at least one exchange per row.
  assert.ok(pulled.exchanges >= 6, `${pulled.exchanges} exchanges`);
  assert.ok(progress.length >= pulled.exchanges - 1 && progress.at(-1)!.bytesDown > 0 && progress.at(-1)!.pulled === pulled.pulled);
  assert.ok(changes.some((t) => t.includes('activite')));
  const rows = await b.query<{ id: string; duree: number; mediateur_id: string }>('SELECT id, duree, mediateur_id FROM activite ORDER BY id');
  assert.deepEqual(rows.map((r) => r.id), [...ids].sort());
  assert.equal(rows[0].mediateur_id, user.id, 'the owner is filled by the device trigger');

  // Concurrent edits of one cell: the later write wins on both tablets.
  await a.exec('UPDATE activite SET duree = 60 WHERE id = ?', [first]);
  await new Promise((r) => setTimeout(r, 5));
  await b.exec('UPDATE activite SET duree = 90 WHERE id = ?', [first]);
  await a.sync();
  const rb = await b.sync();
  assert.equal(rb.conflicts, 1);
  await a.sync();
  for (const r of [a, b]) assert.equal((await r.query('SELECT duree FROM activite WHERE id = ?', [first]))[0].duree, 90);

  // A row the device cannot judge (written behind the triggers' back,
  // as an older app might have) is refused by the server alone; the
  // row is put back as the server holds it and her value is listed.
  // A frozen entry, its prev left to be completed as the outbox does.
  a.engine.db.run(
    `INSERT INTO _outbox (tbl, pk, mask, hlc, vals) VALUES ((SELECT id FROM _tables WHERE name = 'activite'), ?, 0, (SELECT hlc + 1 FROM _replica WHERE id = 1), '{"duree":0}')`,
    [ids[1]],
  );
  a.engine.db.run('UPDATE _replica SET hlc = hlc + 1 WHERE id = 1');
  await a.exec('UPDATE activite SET commune = ? WHERE id = ?', ['Mayenne', ids[2]]);
  const refused = await a.sync();
  assert.equal(refused.rejected, 1);
  const rejected = await a.rejected();
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].rule, 'duree_activite');
  assert.equal(rejected[0].value, 0);
  assert.match(rejected[0].reason, /durée/i);
  assert.equal((await a.query('SELECT duree FROM activite WHERE id = ?', [ids[1]]))[0].duree, 30, 'put back as the server holds it');
  await b.sync();
  assert.equal((await b.query('SELECT commune FROM activite WHERE id = ?', [ids[2]]))[0].commune, 'Mayenne', 'the rest of the batch went through');
  // Retry with a correction: a new write, judged now, synced.
  await a.retry(rejected[0].id, { duree: 50 });
  assert.equal((await a.rejected()).length, 0);
  await a.sync();
  await b.sync();
  assert.equal((await b.query('SELECT duree FROM activite WHERE id = ?', [ids[1]]))[0].duree, 50);

  // Revocation: B is revoked (by its owner, from A's session); at its
  // next contact it is told to erase, and does.
  const token = a.engine.db.value('SELECT access_token FROM _device WHERE id = 1') as string;
  const res = await fetch(`${server.url}/v1/devices/${b.node}/revoke`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const wiped: string[] = [];
  b.on('change', (e) => wiped.push(e.source));
  await b.exec('UPDATE activite SET notes = ? WHERE id = ?', ['écrit après la révocation', first]);
  await assert.rejects(b.sync(), (e: RelaisError) => e.code === 'device_revoked');
  assert.ok(wiped.includes('wipe'));
  const st = await b.status();
  assert.equal(st.revoked, true);
  assert.equal(st.loggedIn, false);
  assert.equal(st.pending, 0);
  assert.equal((await b.query('SELECT COUNT(*) AS n FROM activite'))[0].n, 0);
  assert.equal(b.engine.db.value('SELECT COUNT(*) FROM _rows'), 0);
  assert.equal(b.engine.db.value('SELECT COUNT(*) FROM _nodes'), 0);
  assert.ok(Number(b.engine.db.value('SELECT COUNT(*) FROM _columns')) > 0, 'the dictionary the triggers name tables by stays');
  assert.ok(Number(b.engine.db.value('SELECT COUNT(*) FROM _labels')) > 0, 'labels stay for the login page');

  // The server still holds A's work; A goes on.
  assert.equal((await a.sync()).exchanges >= 1, true);
  await a.close();
  await b.close();
});

test('the device schema is served publicly and builds a replica that opens offline afterwards', async () => {
  const res = await fetch(`${server.url}/v1/device/schema`);
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.ok(doc.version && doc.migrations.length > 0 && doc.triggers.length > 0);
  await assert.rejects(openInProcess({ server: 'http://127.0.0.1:9' }), (e: RelaisError) => e.code === 'offline' && /première ouverture/.test(e.message));
});

test('a pull cut after a few exchanges resumes where it stopped', async () => {
  server.addUser('lea@exemple.fr', 'un-mot-de-passe', 'conseiller');
  const a = await openInProcess({ server: server.url, retryForMs: 2000 });
  await a.login('lea@exemple.fr', 'un-mot-de-passe');
  await a.transaction(Array.from({ length: 20 }, () => activity(a.uuid(), 40)));
  await a.sync();
  const b = await openInProcess({ server: server.url, retryForMs: 2000, pageLimit: 3, maxExchanges: 4 });
  await b.login('lea@exemple.fr', 'un-mot-de-passe');
  await assert.rejects(b.sync(), /arrêtée après 4 échanges/);
  const cursor = b.engine.db.value('SELECT cursor FROM _device WHERE id = 1');
  assert.ok(Number(cursor) > 0, 'the pages applied before the cut are kept, with their cursor');
  let pulled = 0;
  for (let i = 0; i < 100; i++) {
    try {
      pulled += (await b.sync()).pulled;
      break;
    } catch (e) {
      assert.match(String(e), /arrêtée après/);
    }
  }
  assert.equal((await b.query('SELECT COUNT(*) AS n FROM activite'))[0].n, 20);
  assert.ok(pulled < 20 * 5, 'nothing pulled twice');
  await a.close();
  await b.close();
});

test('a clock far ahead is refused, then its writes are stamped again once the date is right', async () => {
  server.addUser('ines@exemple.fr', 'un-mot-de-passe', 'conseiller');
  const a = await openInProcess({ server: server.url, retryForMs: 2000, clockSkewMs: 3600_000 });
  await a.login('ines@exemple.fr', 'un-mot-de-passe');
  const id = a.uuid();
  await a.exec(activity(id, 45).sql, activity(id, 45).params);
  await assert.rejects(a.sync(), (e: RelaisError) => e.code === 'clock_ahead' && /en avance/.test(e.message));
  assert.match((await a.status()).lastError ?? '', /en avance/);
  // She corrects the tablet's date.
  (a.engine as unknown as { opts: { clockSkewMs: number } }).opts.clockSkewMs = 0;
  a.engine.db.run('UPDATE _device SET clock_skew_ms = 0 WHERE id = 1');
  const rep = await a.sync();
  assert.equal(rep.restamped, true);
  assert.equal((await a.status()).pending, 0);
  assert.ok(rep.pushed >= 5);
  await a.close();
});

test('a refused access token is refreshed once, and the refresh token rotates', async () => {
  server.addUser('hugo@exemple.fr', 'un-mot-de-passe', 'conseiller');
  const a = await openInProcess({ server: server.url, retryForMs: 2000 });
  await a.login('hugo@exemple.fr', 'un-mot-de-passe');
  const before = a.engine.db.value('SELECT refresh_token FROM _device WHERE id = 1');
  a.engine.db.run("UPDATE _device SET access_token = 'jeton-refusé' WHERE id = 1");
  const id = a.uuid();
  await a.exec(activity(id, 45).sql, activity(id, 45).params);
  const rep = await a.sync();
  assert.ok(rep.pushed >= 5);
  const after = a.engine.db.value('SELECT refresh_token FROM _device WHERE id = 1');
  assert.notEqual(after, before, 'a refresh spends the token and gives a new one');
  assert.notEqual(a.engine.db.value('SELECT access_token FROM _device WHERE id = 1'), 'jeton-refusé');
  // A refresh the server refuses (the session ended) logs the device out, keeping its data.
  a.engine.db.run("UPDATE _device SET access_token = 'jeton-refusé', refresh_token = 'inconnu' WHERE id = 1");
  await a.exec('UPDATE activite SET duree = 50 WHERE id = ?', [id]);
  await assert.rejects(a.sync(), (e: RelaisError) => e.code === 'unauthorized' && /reconnectez-vous/.test(e.message));
  const st = await a.status();
  assert.equal(st.loggedIn, false);
  assert.equal(st.pending > 0, true, 'nothing recorded is lost');
  await a.close();
});

test('erasing a beneficiary clears her personal values here and, once synced, on the other tablet', async () => {
  server.addUser('manon@exemple.fr', 'un-mot-de-passe', 'conseiller');
  const a = await openInProcess({ server: server.url, retryForMs: 2000 });
  const b = await openInProcess({ server: server.url, retryForMs: 2000 });
  await a.login('manon@exemple.fr', 'un-mot-de-passe');
  await b.login('manon@exemple.fr', 'un-mot-de-passe');
  assert.equal(a.engine.db.value('PRAGMA secure_delete'), 1);
  const id = a.uuid();
  await a.exec("INSERT INTO beneficiaire (id, anonyme, prenom, nom, telephone, commune) VALUES (?, 0, 'Odette', 'Lefèvre', '0600000000', 'Laval')", [id]);
  await a.sync();
  await b.sync();
  assert.equal((await b.query('SELECT nom FROM beneficiaire WHERE id = ?', [id]))[0].nom, 'Lefèvre');
  await a.erase(id);
  const here = (await a.query('SELECT anonyme, prenom, nom, telephone, commune FROM beneficiaire WHERE id = ?', [id]))[0];
  assert.deepEqual({ ...here }, { anonyme: 1, prenom: null, nom: null, telephone: null, commune: 'Laval' });
  await a.sync();
  await b.sync();
  for (const r of [a, b]) {
    // Nowhere the replica keeps values: the domain row, the records'
    // extra values, the outbox.
    const leftovers = r.engine.db.value(
      `SELECT (SELECT COUNT(*) FROM _rows WHERE extra LIKE '%Odette%' OR extra LIKE '%Lefèvre%' OR extra LIKE '%0600000000%')
            + (SELECT COUNT(*) FROM _outbox WHERE vals LIKE '%Odette%' OR vals LIKE '%Lefèvre%' OR vals LIKE '%0600000000%')`,
    );
    assert.equal(leftovers, 0);
    assert.equal(r.engine.db.value('SELECT COUNT(*) FROM _rows r JOIN _tables t ON t.id = r.tbl WHERE t.name = ?', ['beneficiaire']), 1);
    assert.equal((await r.query('SELECT nom FROM beneficiaire WHERE id = ?', [id]))[0].nom, null);
  }
  await assert.rejects(a.erase(a.uuid()), (e: RelaisError) => e.code === 'not_found');
  await a.close();
  await b.close();
});
