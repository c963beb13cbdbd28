// The hybrid logical clock, as syncproto/hlc.go: 48 bits of Unix
// milliseconds, then a 16-bit counter, in one signed 64-bit integer.
// Readings are bigint here: today's readings are about 2^57, beyond the
// 2^53 a JavaScript number holds exactly, and a rounded reading would
// reorder writes. They cross the wire as JSON integers (read by
// json.ts without rounding) and SQLite integers (sqlite-wasm binds and
// returns bigint).

export type Timestamp = bigint;

const LOGICAL_BITS = 16n;
const MAX_INT64 = (1n << 63n) - 1n;

/** Packs milliseconds and a logical counter. */
export function makeTimestamp(millis: number | bigint, logical = 0): Timestamp {
  return (BigInt(millis) << LOGICAL_BITS) | BigInt(logical & 0xffff);
}

/** The physical part, in Unix milliseconds. */
export function millisOf(t: Timestamp): number {
  return Number(t >> LOGICAL_BITS);
}

/** The counter part. */
export function logicalOf(t: Timestamp): number {
  return Number(t & 0xffffn);
}

/** The reading of a wall-clock time, counter zero. */
export function fromMillis(ms: number): Timestamp {
  return makeTimestamp(Math.floor(ms));
}

/** syncproto.Next: strictly above the last reading and anything
 *  received, never below the wall clock; saturates at the top of int64
 *  instead of wrapping. */
export function next(last: Timestamp, received: Timestamp, physical: Timestamp): Timestamp {
  let n = last > received ? last : received;
  if (n < MAX_INT64) n++;
  return physical > n ? physical : n;
}

/** Reads a timestamp from what SQLite or JSON gave: bigint, a safe
 *  integer number, or decimal text. */
export function toTimestamp(v: unknown): Timestamp {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  throw new Error(`not a clock reading: ${String(v)}`);
}
