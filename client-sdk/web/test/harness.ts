// Test harness: the real relais server binary, started on 127.0.0.1 with
// a fresh data directory, and stopped (by its pid) when the tests end.
// The Go wrapper (web_test.go) builds the binary and passes its path in
// RELAIS_SERVER_BIN; run alone, the tests build it themselves.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface TestServer {
  url: string;
  data: string;
  bin: string;
  addUser(email: string, password: string, role?: string, name?: string): void;
  /** Stops the server, runs between (on the stopped data directory:
   *  relais restore), and starts it again on the same address. */
  restart(between?: (bin: string, data: string) => void): Promise<void>;
  stop(): Promise<void>;
}

let built: string | null = null;

function serverBin(): string {
  if (process.env.RELAIS_SERVER_BIN) return process.env.RELAIS_SERVER_BIN;
  if (!built) {
    built = join(mkdtempSync(join(tmpdir(), 'relais-bin-')), 'relais');
    execFileSync('go', ['build', '-o', built, './cmd/relais'], { cwd: resolve('../..'), stdio: 'inherit' });
  }
  return built;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

export async function startServer(opts: { prepare?: (bin: string, data: string) => void } = {}): Promise<TestServer> {
  const bin = serverBin();
  const data = mkdtempSync(join(tmpdir(), 'relais-data-'));
  opts.prepare?.(bin, data);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const addUser = (email: string, password: string, role = 'conseiller', name?: string) => {
    const args = ['admin', 'user', 'add', '--data', data, '--email', email, '--role', role, '--password-stdin'];
    if (name) args.push('--name', name);
    execFileSync(bin, args, { input: password + '\n', stdio: ['pipe', 'ignore', 'inherit'] });
  };
  let child: ChildProcess;
  let log = '';
  const launch = async () => {
    child = spawn(bin, ['serve', '--data', data, '--addr', `127.0.0.1:${port}`, '--retention', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (b) => {
      log += b;
      if (log.length > 100_000) log = log.slice(-50_000);
    });
    // Bounded wait for /healthz.
    for (let i = 0; ; i++) {
      try {
        const r = await fetch(url + '/healthz');
        if (r.ok) break;
      } catch {
        // not yet
      }
      if (child.exitCode !== null || i > 300) {
        child.kill('SIGKILL');
        throw new Error(`relais serve did not start:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const halt = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  };
  await launch();
  return {
    url,
    data,
    bin,
    addUser,
    restart: async (between) => {
      await halt();
      between?.(bin, data);
      await launch();
    },
    stop: async () => {
      await halt();
      rmSync(data, { recursive: true, force: true });
    },
  };
}
