// Bundles the SDK with esbuild: dist/ for browsers (the module the app
// imports, the worker that holds SQLite and the sync engine, and
// SQLite's wasm beside it), or, with --tests, each test file for Node
// into .build/test/. Output is deterministic (no timestamps, no
// absolute paths), so a committed copy can be compared with a rebuild.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const tests = process.argv.includes('--tests');

if (tests) {
  rmSync('.build', { recursive: true, force: true });
  const entries = readdirSync('test').filter((f) => f.endsWith('.test.ts')).map((f) => join('test', f));
  await build({
    entryPoints: entries,
    outdir: '.build/test',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    sourcemap: 'inline',
    external: ['@sqlite.org/sqlite-wasm'],
    logLevel: 'warning',
  });
  await build({
    entryPoints: ['bench/first-sync.ts'],
    outdir: '.build/bench',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    external: ['@sqlite.org/sqlite-wasm'],
    logLevel: 'warning',
  });
} else {
  rmSync('dist', { recursive: true, force: true });
  const common = { bundle: true, format: 'esm', target: ['es2022'], platform: 'browser', legalComments: 'eof', logLevel: 'warning' };
  await build({ ...common, entryPoints: { relais: 'src/index.ts' }, outdir: 'dist' });
  await build({ ...common, entryPoints: { 'relais-worker': 'src/worker.ts' }, outdir: 'dist' });
  const require = createRequire(import.meta.url);
  const wasmDir = dirname(require.resolve('@sqlite.org/sqlite-wasm/sqlite3.wasm'));
  mkdirSync('dist', { recursive: true });
  copyFileSync(join(wasmDir, 'sqlite3.wasm'), 'dist/sqlite3.wasm');
}
