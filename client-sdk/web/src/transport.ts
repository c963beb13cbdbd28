// The device's side of HTTP, as client-sdk/device/transport.go: gzip
// both ways, the column form or JSON for answers, retries with
// exponential backoff and jitter on network errors and 5xx answers.
import { decodeColumns } from './columns.js';
import { parse } from './json.js';
import { decodeError, decodeResponse, MEDIA_TYPE_COLUMNS, ProtocolError, type SyncResponse } from './proto.js';

/** What the device reads of one answer at most. */
export const MAX_ANSWER = 256 << 20;

export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

async function pipe(data: Uint8Array, stream: CompressionStream | DecompressionStream, limit: number): Promise<Uint8Array> {
  const reader = new Blob([data as BlobPart]).stream().pipeThrough(stream).getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > limit) {
      await reader.cancel();
      throw new ProtocolError('body_too_large', `answer larger than ${limit} bytes once decompressed`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function gzip(data: Uint8Array): Promise<Uint8Array> {
  return pipe(data, new CompressionStream('gzip'), Number.MAX_SAFE_INTEGER);
}

export function gunzip(data: Uint8Array, limit = MAX_ANSWER): Promise<Uint8Array> {
  return pipe(data, new DecompressionStream('gzip'), limit);
}

export interface Sent<T> {
  answer: T;
  up: number;
  down: number;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** One request, no retry. Network failures throw NetworkError, server
 *  refusals ProtocolError (retryable when status >= 500). */
export async function send(url: string, body: string, opts: { token?: string; gz: boolean; sync: boolean; signal?: AbortSignal }): Promise<Sent<unknown>> {
  const raw = utf8.encode(body);
  const payload = opts.gz ? await gzip(raw) : raw;
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (opts.gz) headers['Content-Encoding'] = 'gzip';
  if (opts.sync) headers['Accept'] = `${MEDIA_TYPE_COLUMNS}, application/json`;
  if (opts.token) headers['Authorization'] = `Bearer ${opts.token}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers, body: payload as BodyInit, signal: opts.signal });
  } catch (e) {
    throw new NetworkError(`server unreachable: ${(e as Error).message}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new NetworkError(`answer cut: ${(e as Error).message}`);
  }
  // fetch decodes a gzip Content-Encoding itself: the bytes on the wire
  // are what Content-Length says, when the server sent one.
  const down = Number(res.headers.get("Content-Length")) || bytes.length;
  // fetch undoes a gzip Content-Encoding itself; a body still in gzip
  // (a proxy that hid the header) is undone here.
  if (isGzip(bytes)) bytes = await gunzip(bytes);
  const type = (res.headers.get('Content-Type') ?? '').split(';')[0].trim().toLowerCase();
  if (res.status !== 200) {
    const err = decodeError(res.status, new TextDecoder().decode(bytes));
    throw err;
  }
  let answer: unknown;
  if (opts.sync && type === MEDIA_TYPE_COLUMNS) answer = decodeColumns(bytes);
  else {
    let text: string;
    try {
      text = fromUtf8.decode(bytes);
    } catch {
      throw new ProtocolError('malformed_body', 'answer is not UTF-8');
    }
    answer = opts.sync ? decodeResponse(text) : parse(text);
  }
  return { answer, up: payload.length, down };
}

export function isRetryable(e: unknown): boolean {
  return e instanceof NetworkError || (e instanceof ProtocolError && e.status >= 500);
}

/** send, retried with exponential backoff (0.5 s doubling to 30 s,
 *  jittered) on network errors and 5xx answers, for at most retryForMs. */
export async function exchange(
  url: string,
  body: string,
  token: string,
  opts: { retryForMs: number; onRetry?: (err: Error, waitMs: number) => void; signal?: AbortSignal },
): Promise<Sent<SyncResponse>> {
  const start = Date.now();
  let wait = 500;
  let up = 0;
  let down = 0;
  for (;;) {
    try {
      const s = await send(url, body, { token, gz: true, sync: true, signal: opts.signal });
      return { answer: s.answer as SyncResponse, up: up + s.up, down: down + s.down };
    } catch (e) {
      if (!isRetryable(e) || Date.now() - start + wait > opts.retryForMs || opts.signal?.aborted) throw e;
      const jittered = wait * (0.5 + Math.random());
      opts.onRetry?.(e as Error, jittered);
      await new Promise((r) => setTimeout(r, jittered));
      wait = Math.min(wait * 2, 30_000);
    }
  }
}
