// A server restored from a backup lacks what devices pushed after it: the
// device notices the new history, puts its own acknowledged cells back in
// its outbox (Go: checkHistory, requeueOwnCells, here read from the
// version records) and pushes them again, and pulls from the sequence the
// two histories share.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openInProcess } from '../src/node.js';
import { startServer, type TestServer } from './harness.js';

let server: TestServer;
before(async () => {
  server = await startServer();
  server.addUser('lea@exemple.fr', 'un-mot-de-passe', 'conseiller', 'Léa Martin');
});
after(async () => {
  await server?.stop();
});

test('after a restore from a backup, the device sends its own writes again and nothing is lost', async () => {
  const a = await openInProcess({ server: server.url, retryForMs: 2000 });
  const user = await a.login('lea@exemple.fr', 'un-mot-de-passe');
  const kept = a.uuid();
  const insert = 'INSERT INTO activite (id, type, date, duree, type_lieu, commune, mediateur_id) VALUES (?, ?, ?, ?, ?, ?, ?)';
  await a.exec(insert, [kept, 'individuel', '2026-11-30', 45, 'domicile', 'Laval', user.id]);
  await a.sync();

  const backup = join(mkdtempSync(join(tmpdir(), 'relais-backup-')), 'relais.bak');
  execFileSync(server.bin, ['backup', '--data', server.data, '--to', backup], { stdio: 'ignore' });

  // Written and acknowledged after the backup: the restored server lacks them.
  const lost = a.uuid();
  await a.exec(insert, [lost, 'collectif', '2026-12-01', 90, 'domicile', 'Évron', user.id]);
  await a.exec('UPDATE activite SET duree = 60 WHERE id = ?', [kept]);
  await a.sync();
  assert.equal((await a.status()).pending, 0);

  await server.restart((bin, data) => execFileSync(bin, ['restore', '--data', data, '--from', backup], { stdio: 'ignore' }));
  const rep = await a.sync();
  assert.equal(rep.serverRestored, true);
  assert.ok(rep.pushed >= 2, `pushed ${rep.pushed}`);
  assert.equal((await a.status()).pending, 0);

  const b = await openInProcess({ server: server.url, retryForMs: 2000 });
  await b.login('lea@exemple.fr', 'un-mot-de-passe');
  await b.sync();
  const rows = (await b.query('SELECT id, duree, commune FROM activite ORDER BY duree')).map((r) => ({ ...r }));
  assert.deepEqual(rows, [
    { id: kept, duree: 60, commune: 'Laval' },
    { id: lost, duree: 90, commune: 'Évron' },
  ]);
  await a.close();
  await b.close();
});
