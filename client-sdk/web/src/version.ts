// Versions and the merge rule for one cell, as syncproto/version.go and
// merge.go: the whole last-writer-wins rule is compare(); decide() is
// the verdict on one incoming write. Test vectors written by the Go
// implementation hold the two to the same answers.
import type { Timestamp } from './hlc.js';

export interface Version {
  hlc: Timestamp;
  node: string;
}

export const ZERO: Version = Object.freeze({ hlc: 0n, node: '' }) as Version;

export function isZero(v: Version): boolean {
  return v.hlc === 0n && v.node === '';
}

const utf8 = new TextEncoder();

/** Orders node ids as Go orders strings: by their UTF-8 bytes. JavaScript
 *  compares UTF-16 code units, which disagrees past U+D7FF. */
export function compareNodes(a: string, b: string): number {
  if (a === b) return 0;
  // Up to the first difference the two orders agree; there, code units
  // below the surrogates order as their UTF-8 bytes do.
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length < b.length ? -1 : 1;
  const x0 = a.charCodeAt(i);
  const y0 = b.charCodeAt(i);
  if (x0 < 0xd800 && y0 < 0xd800) return x0 < y0 ? -1 : 1;
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const m = Math.min(x.length, y.length);
  for (let j = 0; j < m; j++) if (x[j] !== y[j]) return x[j] < y[j] ? -1 : 1;
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** syncproto.Compare: by hlc, then by node. */
export function compare(a: Version, b: Version): -1 | 0 | 1 {
  if (a.hlc < b.hlc) return -1;
  if (a.hlc > b.hlc) return 1;
  const c = compareNodes(a.node, b.node);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

export type Outcome = 'duplicate' | 'lost' | 'won';

export interface Decision {
  outcome: Outcome;
  concurrent: boolean;
}

/** syncproto.Decide: held is the version held for the cell (ZERO when
 *  none), incoming and prev those of the arriving write. */
export function decide(held: Version, incoming: Version, prev: Version): Decision {
  if (isZero(held)) return { outcome: 'won', concurrent: false };
  const c = compare(incoming, held);
  if (c === 0) return { outcome: 'duplicate', concurrent: false };
  return { outcome: c < 0 ? 'lost' : 'won', concurrent: compare(prev, held) !== 0 };
}
