// The version records' encodings against the Go implementation's:
// replica/testdata/clocks_vectors.json (go test ./replica -run
// TestClocksVectors -update) holds clocks lists and the bytes
// encodeClocks packs them into.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BadClocksError, decodeClocks, encodeClocks, goJSON, pkArg, pkText, type ColClock } from '../src/rows.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

interface ClocksFile {
  cases: { clocks: [string, string, string, string][]; hex: string }[];
  damaged: string[];
}

const file = JSON.parse(readFileSync('../../replica/testdata/clocks_vectors.json', 'utf8')) as ClocksFile;

test('clocks: encodeClocks and decodeClocks agree with Go on every vector', () => {
  assert.ok(file.cases.length >= 100);
  let n = 0;
  for (const [i, v] of file.cases.entries()) {
    const cs: ColClock[] = v.clocks.map(([bit, hlc, node, seq]) => ({ bit: Number(bit), hlc: BigInt(hlc), node: Number(node), seq: BigInt(seq) }));
    assert.equal(hex(encodeClocks(cs)), v.hex, `encode vector ${i}`);
    assert.deepEqual(decodeClocks(bytes(v.hex)), cs, `decode vector ${i}`);
    n += cs.length;
  }
  assert.ok(n > 200);
});

test('clocks: a damaged blob is refused, as Go refuses it', () => {
  assert.ok(file.damaged.length > 0);
  for (const d of file.damaged) assert.throws(() => decodeClocks(bytes(d)), BadClocksError, d);
});

test('fuzz: a mutated clocks blob decodes, and then packs back to the same clocks, or is refused as damaged', () => {
  let seed = 13;
  const r = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    const src = bytes(file.cases[Math.floor(r() * file.cases.length)].hex);
    const b = Array.from(src);
    for (let n = 1 + Math.floor(r() * 3); n > 0; n--) {
      const at = Math.floor(r() * (b.length + 1));
      if (r() < 0.5) b[at] = Math.floor(r() * 256);
      else if (r() < 0.5) b.splice(at, 1);
      else b.length = at;
    }
    let cs: ColClock[];
    try {
      cs = decodeClocks(Uint8Array.from(b));
    } catch (e) {
      assert.ok(e instanceof BadClocksError, String(e));
      continue;
    }
    decoded++;
    assert.deepEqual(decodeClocks(encodeClocks(cs)), cs);
  }
  assert.ok(decoded > 100, `only ${decoded} mutated blobs decoded`);
});

test('keys: a canonical UUID is kept as its 16 bytes, any other key as text', () => {
  const id = '0192f1a0-0000-7000-8000-00000000000a';
  const b = pkArg(id);
  assert.ok(b instanceof Uint8Array && b.length === 16);
  assert.equal(hex(b as Uint8Array), '0192f1a000007000800000000000000a');
  assert.equal(pkText(b), id);
  for (const other of [id.toUpperCase(), 'pas-un-uuid', id.replace(/-/g, '')]) {
    assert.equal(pkArg(other), other);
    assert.equal(pkText(pkArg(other)), other);
  }
});

test('extra: values written as encoding/json writes them', () => {
  assert.equal(goJSON({ b: 1, a: 'x<y>&z', c: null, d: 1.5, e: 123456789012345678901234567890n }), '{"a":"x\\u003cy\\u003e\\u0026z","b":1,"c":null,"d":1.5,"e":123456789012345678901234567890}');
  assert.equal(goJSON('ligne\u2028séparée\n'), '"ligne\\u2028séparée\\n"');
  assert.equal(goJSON([1e21, 1e-7, 100]), '[1e+21,1e-7,100]');
});
