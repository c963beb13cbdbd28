// Builds the app into dist/, which Go embeds (package app): the page,
// styles, manifest and icons from static/, the app's code bundled by
// esbuild from src/main.ts, the SDK (client-sdk/web/dist: its module,
// its worker and SQLite's wasm) under sdk/, and the service worker with
// the list of those files and a version made of their hash.
//
// The output is deterministic (no timestamps, no absolute paths), so
// .ci/run can rebuild it and compare with what is committed.
import { build } from 'esbuild';
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

// RELAIS_SDK_DIR builds against another copy of the SDK (development).
const sdkDir = process.env.RELAIS_SDK_DIR || '../client-sdk/web';
const sdkFiles = ['relais.js', 'relais-worker.js', 'sqlite3.wasm'];

// The SDK is built again each time (a second or two), so that the copy
// under dist/sdk/ is never an older build of its sources; its packages
// are installed when they are missing.
if (!process.env.RELAIS_SDK_DIR) {
  if (!existsSync(join(sdkDir, 'node_modules'))) {
    execSync('npm ci --no-audit --no-fund', { cwd: sdkDir, stdio: 'inherit' });
  }
  execSync('npm run build --silent', { cwd: sdkDir, stdio: 'inherit' });
}
if (!sdkFiles.every((f) => existsSync(join(sdkDir, 'dist', f)))) {
  throw new Error(`the SDK's build is missing in ${sdkDir}/dist`);
}

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist/sdk', { recursive: true });
for (const f of readdirSync('static')) copyFileSync(join('static', f), join('dist', f));
for (const f of sdkFiles) copyFileSync(join(sdkDir, 'dist', f), join('dist/sdk', f));

await build({
  entryPoints: { app: 'src/main.ts' },
  outdir: 'dist',
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  platform: 'browser',
  minify: true,
  legalComments: 'none',
  // The SDK is loaded as its own module, the file the worker and the
  // wasm sit beside: the app's bundle does not copy it.
  external: ['./sdk/relais.js'],
  logLevel: 'warning',
});

// Every file but the service worker itself, in a stable order.
function walk(dir) {
  return readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [relative('dist', p)];
  });
}
const files = walk('dist').filter((f) => f !== 'sw.js');
const hash = createHash('sha256');
for (const f of files) hash.update(f).update('\0').update(readFileSync(join('dist', f)));
const version = hash.digest('hex').slice(0, 16);

await build({
  entryPoints: { sw: 'src/sw.ts' },
  outdir: 'dist',
  bundle: true,
  format: 'iife',
  target: ['es2022'],
  platform: 'browser',
  minify: true,
  legalComments: 'none',
  define: { __VERSION__: JSON.stringify(version), __FILES__: JSON.stringify(files) },
  logLevel: 'warning',
});
console.log(`app built: ${files.length + 1} files, version ${version}`);
