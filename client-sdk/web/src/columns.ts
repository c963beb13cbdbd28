// The column form of an answer (syncproto/columns*.go): names once per
// page, each column's values in a stream of their own, UUIDs split into
// timestamp differences and packed random bits, back-references for
// values already seen. The decoder is strict, like Go's: an index out
// of range, a stream that ends early or keeps bytes left over, text that
// is not UTF-8, refuse the whole answer.
import { parse, type JSONValue } from './json.js';
import { decodeResponseHead, MAX_BATCH_CHANGES, MAX_PAGE_LIMIT, ProtocolError, type Change, type SyncResponse } from './proto.js';
import { ZERO, type Version } from './version.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  off = 0;
  constructor(readonly b: Uint8Array) {}

  /** An unsigned varint, as bigint (up to 64 bits). */
  uvarintBig(): bigint {
    let x = 0n;
    let s = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.off >= this.b.length) throw new Error('unexpected end of data');
      const c = this.b[this.off++];
      if (c < 0x80) {
        if (i === 9 && c > 1) throw new Error('varint overflows 64 bits');
        return x | (BigInt(c) << s);
      }
      x |= BigInt(c & 0x7f) << s;
      s += 7n;
    }
    throw new Error('varint overflows 64 bits');
  }

  /** An unsigned varint that fits a number (counts, indexes, codes). */
  uvarint(): number {
    // fast path for short varints
    let x = 0;
    let mul = 1;
    const start = this.off;
    for (let i = 0; i < 7; i++) {
      if (this.off >= this.b.length) throw new Error('unexpected end of data');
      const c = this.b[this.off++];
      x += (c & 0x7f) * mul;
      if (c < 0x80) return x;
      mul *= 128;
    }
    this.off = start;
    const big = this.uvarintBig();
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('number out of range');
    return Number(big);
  }

  varintBig(): bigint {
    const u = this.uvarintBig();
    return (u >> 1n) ^ -(u & 1n);
  }

  count(): number {
    const n = this.uvarint();
    if (n > this.b.length - this.off) throw new Error(`count ${n} exceeds the data`);
    return n;
  }

  bytes(): Uint8Array {
    const n = this.uvarint();
    if (n > this.b.length - this.off) throw new Error('unexpected end of data');
    const s = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return s;
  }

  text(): string {
    try {
      return utf8.decode(this.bytes());
    } catch (e) {
      if (e instanceof TypeError) throw new Error('text is not valid UTF-8');
      throw e;
    }
  }

  index(n: number): number {
    const v = this.uvarint();
    if (v >= n) throw new Error(`index ${v} out of range (${n})`);
    return v;
  }

  done(): boolean {
    return this.off === this.b.length;
  }
}

class BitReader {
  off = 0; // in bits
  constructor(readonly b: Uint8Array) {}

  read(n: number): bigint {
    if (this.off + n > 8 * this.b.length) throw new Error('unexpected end of data');
    let v = 0n;
    while (n > 0) {
      const bit = 8 - (this.off % 8);
      const take = Math.min(n, bit);
      const cur = (this.b[this.off >> 3] >> (bit - take)) & ((1 << take) - 1);
      v = (v << BigInt(take)) | BigInt(cur);
      this.off += take;
      n -= take;
    }
    return v;
  }

  done(): boolean {
    if (((this.off + 7) >> 3) !== this.b.length) return false;
    if (this.off % 8 === 0) return true;
    return (this.b[this.b.length - 1] & ((1 << (8 - (this.off % 8))) - 1)) === 0;
  }
}

const MAGIC = [0x52, 0x43, 1]; // "RC" 1
const KEY_NEW_UUID = 0;
const KEY_STRING = 1;
const KEY_REF_BASE = 2;
const VAL_NULL = 0;
const VAL_INT = 1;
const VAL_FLOAT = 2;
const VAL_NEW_UUID = 3;
const VAL_STRING = 4;
const VAL_JSON = 5;
const VAL_REF_BASE = 6;
const STREAMS = 7; // shapes, keys, hlcs, nodes, prevs, uuid heads, uuid bits
const [S_SHAPES, S_KEYS, S_HLCS, S_NODES, S_PREVS, S_UUID_HEADS, S_UUID_BITS] = [0, 1, 2, 3, 4, 5, 6];

interface Col {
  name: string;
  rd: Reader;
  strings: string[];
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function formatUUID(u: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEX[u[i]];
  }
  return s;
}

/** syncproto.DecodeResponseColumns. Errors are ProtocolError malformed_body. */
export function decodeColumns(data: Uint8Array): SyncResponse {
  if (data.length < 3 || data[0] !== MAGIC[0] || data[1] !== MAGIC[1] || data[2] !== MAGIC[2]) {
    throw new ProtocolError('malformed_body', 'answer is not in the column form (bad magic)');
  }
  const rd = new Reader(data.subarray(3));
  let resp: SyncResponse;
  try {
    const head = parse(rd.text()) as Record<string, JSONValue>;
    if (head === null || typeof head !== 'object' || Array.isArray(head)) throw new Error('head is not an object');
    if ((head.changes !== undefined && head.changes !== null) || (head.rows !== undefined && head.rows !== null)) {
      throw new Error('changes belong in the columns, not in the head');
    }
    resp = decodeResponseHead(head);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('malformed_body', `column answer head: ${(e as Error).message}`);
  }
  try {
    resp.changes = decodeChanges(rd);
  } catch (e) {
    throw new ProtocolError('malformed_body', `column answer: ${(e as Error).message}`);
  }
  return resp;
}

function decodeChanges(rd: Reader): Change[] {
  const tables: { name: string; cols: Col[] }[] = [];
  const ntables = rd.count();
  for (let i = 0; i < ntables; i++) {
    const name = rd.text();
    const ncols = rd.count();
    const cols: Col[] = [];
    for (let j = 0; j < ncols; j++) cols.push({ name: rd.text(), rd: new Reader(new Uint8Array()), strings: [] });
    tables.push({ name, cols });
  }
  const nodes: string[] = [];
  const nnodes = rd.count();
  for (let i = 0; i < nnodes; i++) nodes.push(rd.text());
  const shapes: number[][] = [];
  const nshapes = rd.count();
  for (let i = 0; i < nshapes; i++) {
    const t = rd.index(tables.length);
    const ncols = tables[t].cols.length;
    const n = rd.count();
    if (n === 0 || n > ncols) throw new Error(`shape ${i}: bad column count`);
    const s = [t];
    for (let j = 1; j <= n; j++) {
      const c = rd.index(ncols);
      if (s.slice(1).includes(c)) throw new Error(`shape ${i} names a column twice`);
      s.push(c);
    }
    shapes.push(s);
  }
  const ngroups = rd.count();
  const fixed: Reader[] = [];
  for (let i = 0; i < STREAMS; i++) fixed.push(new Reader(rd.bytes()));
  for (const t of tables) for (const c of t.cols) c.rd = new Reader(rd.bytes());
  if (!rd.done()) throw new Error('data after the last stream');

  const bits = new BitReader(fixed[S_UUID_BITS].b);
  const heads = fixed[S_UUID_HEADS];
  const uuids: string[] = [];
  let uuidTime = 0n;
  const newUUID = (): string => {
    const code = heads.uvarintBig();
    const u = new Uint8Array(16);
    if (code === 1n) {
      if (heads.b.length - heads.off < 16) throw new Error('uuid heads: ends early');
      u.set(heads.b.subarray(heads.off, heads.off + 16));
      heads.off += 16;
      if (u[6] >> 4 === 7 && u[8] >> 6 === 2) throw new Error('uuid heads: a UUIDv7 written whole');
    } else if ((code & 1n) === 0n) {
      const z = code >> 1n;
      const ts = uuidTime + ((z >> 1n) ^ -(z & 1n));
      if (ts < 0n || ts >= 1n << 48n) throw new Error('uuid heads: timestamp out of range');
      uuidTime = ts;
      const a = bits.read(12);
      const b = bits.read(6);
      const c = bits.read(56);
      const hi = (ts << 16n) | 0x7000n | a;
      for (let i = 0; i < 8; i++) u[i] = Number((hi >> BigInt(56 - 8 * i)) & 0xffn);
      for (let i = 0; i < 8; i++) u[8 + i] = Number((c >> BigInt(56 - 8 * i)) & 0xffn);
      u[8] = 0x80 | Number(b);
    } else {
      throw new Error(`uuid heads: bad code ${code}`);
    }
    const s = formatUUID(u);
    uuids.push(s);
    return s;
  };
  const uuidBack = (back: number): string => {
    if (back >= uuids.length) throw new Error(`UUID reference ${back} out of range (${uuids.length})`);
    return uuids[uuids.length - 1 - back];
  };
  const value = (col: Col): unknown => {
    const r = col.rd;
    const code = r.uvarint();
    switch (code) {
      case VAL_NULL:
        return null;
      case VAL_INT: {
        const v = r.varintBig();
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case VAL_FLOAT: {
        const t = utf8.decode(r.bytes());
        const f = Number(t);
        if (t.trim() === '' || !Number.isFinite(f)) throw new Error(`bad number ${t.slice(0, 40)}`);
        return f;
      }
      case VAL_NEW_UUID: {
        const s = newUUID();
        col.strings.push(s);
        return s;
      }
      case VAL_STRING: {
        const s = r.text();
        col.strings.push(s);
        return s;
      }
      case VAL_JSON:
        return parse(utf8.decode(r.bytes()));
    }
    const back = Math.floor((code - VAL_REF_BASE) / 2);
    if ((code - VAL_REF_BASE) % 2 === 1) {
      const s = uuidBack(back);
      col.strings.push(s);
      return s;
    }
    if (back >= col.strings.length) throw new Error(`value reference ${back} out of range (${col.strings.length})`);
    return col.strings[col.strings.length - 1 - back];
  };

  const out: Change[] = [];
  let hlc = 0n;
  for (let g = 0; g < ngroups; g++) {
    const code = fixed[S_SHAPES].uvarint();
    const si = Math.floor(code / 2);
    if (si >= shapes.length) throw new Error(`group ${g}: shape ${si} out of range`);
    const shape = shapes[si];
    const hasPrev = code % 2 === 1;
    if (out.length + shape.length - 1 > MAX_BATCH_CHANGES + MAX_PAGE_LIMIT) throw new Error('too many cells');
    const kc = fixed[S_KEYS].uvarint();
    const pk = kc === KEY_NEW_UUID ? newUUID() : kc === KEY_STRING ? fixed[S_KEYS].text() : uuidBack(kc - KEY_REF_BASE);
    hlc = BigInt.asIntN(64, hlc + fixed[S_HLCS].varintBig());
    const node = nodes[fixed[S_NODES].index(nodes.length)];
    const version: Version = { hlc, node };
    const t = tables[shape[0]];
    const first = out.length;
    for (const ci of shape.slice(1)) {
      const col = t.cols[ci];
      out.push({ table: t.name, pk, column: col.name, value: value(col) as Change['value'], version, prev: ZERO });
    }
    if (hasPrev) {
      const prevs = fixed[S_PREVS];
      for (let k = first; k < out.length; k++) {
        const n = prevs.uvarint();
        if (n === 0) continue;
        if (n > nodes.length) throw new Error(`node ${n - 1} out of range`);
        const back = prevs.varintBig();
        out[k].prev = { hlc: BigInt.asIntN(64, hlc - back), node: nodes[n - 1] };
      }
    }
  }
  fixed[S_UUID_BITS].off = fixed[S_UUID_BITS].b.length;
  if (!bits.done()) throw new Error('uuid bits stream has data left over');
  fixed.forEach((f, i) => {
    if (!f.done()) throw new Error(`stream ${i} has data left over`);
  });
  for (const t of tables) for (const c of t.cols) if (!c.rd.done()) throw new Error(`stream of ${t.name}.${c.name} has data left over`);
  return out;
}
