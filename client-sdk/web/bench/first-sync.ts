// Benchmark (for BENCHMARKS.md): a conseillère's first sync in the web
// SDK, from the real server holding the demo département, and a day's
// work pushed. The SDK runs in Node (sqlite-wasm, in memory: OPFS is a
// browser's); the Go SDK syncs the same account with the same server,
// for comparison. Run: npm run bench (RELAIS_SERVER_BIN, DEMO_SIZE,
// DEMO_EMAIL may be set).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openInProcess } from '../src/node.js';
import { startServer } from '../test/harness.js';

const size = process.env.DEMO_SIZE ?? '50000';
const email = process.env.DEMO_EMAIL ?? 'camille.durand@demo.relais.fr';
const password = 'demo-relais-53';

function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const server = await startServer({
  prepare: (bin, data) => {
    const t = performance.now();
    if (process.env.DEMO_DATA) {
      // A département generated earlier (relais demo --data DIR …), copied so the run leaves it as it was.
      cpSync(process.env.DEMO_DATA, data, { recursive: true });
      return;
    }
    execFileSync(bin, ['demo', '--data', data, '--departement', '53', '--seed', '1', '--size', size], { stdio: 'ignore' });
    console.log(`demo of ${size} activities generated in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  },
});
try {
  const relais = await openInProcess({ server: server.url });
  await relais.login(email, password, 'Tablette de banc d’essai');
  let t = performance.now();
  let c = cpu();
  const first = await relais.sync();
  const wall = (performance.now() - t) / 1000;
  const sdkCPU = cpu() - c;
  const activities = (await relais.query<{ n: number }>('SELECT COUNT(*) AS n FROM activite'))[0].n;
  // The replica's size once synced (all its pages: domain tables, version records, outbox).
  const pageSize = Number((await relais.query('PRAGMA page_size'))[0].page_size);
  const pages = Number((await relais.query('PRAGMA page_count'))[0].page_count);
  console.log(`replica after the first sync: ${((pages * pageSize) / 1e6).toFixed(1)} MB (${pages} pages of ${pageSize} bytes)`);
  console.log(
    `web SDK first sync of ${email}: ${first.pulled} cells (${activities} activities) in ${first.exchanges} exchanges, ` +
      `${(first.bytesDown / 1e6).toFixed(2)} MB down, ${wall.toFixed(2)} s wall, ${sdkCPU.toFixed(2)} s CPU in the SDK's process`,
  );

  // A day's work: 12 home visits, each with a new beneficiary and its accompaniment.
  const user = (await relais.status()).user!;
  t = performance.now();
  for (let i = 0; i < 12; i++) {
    const b = relais.uuid();
    const a = relais.uuid();
    await relais.transaction([
      {
        sql: "INSERT INTO beneficiaire (id, anonyme, prenom, nom, commune, annee_naissance) VALUES (?, 0, ?, ?, 'Laval', 1950)",
        params: [b, 'Prénom' + i, 'Nom' + i],
      },
      {
        sql: "INSERT INTO activite (id, type, date, duree, type_lieu, commune, thematiques) VALUES (?, 'individuel', '2026-11-30', 45, 'domicile', 'Laval', ?)",
        params: [a, JSON.stringify(['aide_aux_demarches_administratives', 'argent_impots'])],
      },
      { sql: 'INSERT INTO accompagnement (id, activite_id, beneficiaire_id, premier_accompagnement) VALUES (?, ?, ?, 1)', params: [relais.uuid(), a, b] },
    ]);
  }
  const writes = (performance.now() - t) / 1000;
  const pending = (await relais.status()).pending;
  t = performance.now();
  const day = await relais.sync();
  console.log(
    `a day's work (12 visits, ${pending} cells) written in ${(writes * 1000).toFixed(0)} ms, pushed in ${((performance.now() - t) * 1).toFixed(0)} ms, ` +
      `${day.exchanges} exchange(s), ${day.bytesUp} bytes up, owner ${user.id}`,
  );
  await relais.close();

  // The Go SDK, same account, same server.
  const dir = mkdtempSync(join(tmpdir(), 'relais-go-dev-'));
  const db = join(dir, 'go.db');
  execFileSync(server.bin, ['device', 'login', '--db', db, '--server', server.url, '--email', email, '--password-stdin'], { input: password + '\n', stdio: ['pipe', 'ignore', 'inherit'] });
  t = performance.now();
  // /usr/bin/time gives the Go process's CPU: on a loaded machine wall time says little.
  const timed = existsSync('/usr/bin/time');
  const r = timed
    ? spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', server.bin, 'device', 'sync', '--db', db], { encoding: 'utf8' })
    : spawnSync(server.bin, ['device', 'sync', '--db', db], { encoding: 'utf8' });
  const goWall = (performance.now() - t) / 1000;
  const m = /cpu ([\d.]+) ([\d.]+)/.exec(r.stderr ?? '');
  const goCPU = m ? (Number(m[1]) + Number(m[2])).toFixed(2) + ' s CPU' : 'CPU not measured';
  console.log(`Go SDK first sync of the same account: ${goWall.toFixed(2)} s wall, ${goCPU}`);
  rmSync(dir, { recursive: true, force: true });
  console.log(`load average during the run: ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
} finally {
  await server.stop();
}
