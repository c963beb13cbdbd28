// Fuzzing the decoders of outside bytes (answers from a server, or
// whatever a proxy put in their place): mutated valid inputs must either
// decode or be refused with a ProtocolError (or a JSONSyntaxError for
// plain JSON), never crash otherwise or run away. Seeded, bounded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeColumns } from '../src/columns.js';
import { JSONSyntaxError, parse, stringify } from '../src/json.js';
import { decodeResponse, ProtocolError } from '../src/proto.js';

// A small deterministic generator (mulberry32), so a failure repeats.
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(b: Uint8Array, r: () => number): Uint8Array {
  const out = Array.from(b);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (out.length + 1));
    switch (Math.floor(r() * 4)) {
      case 0:
        out[at] = Math.floor(r() * 256);
        break;
      case 1:
        out.splice(at, 1);
        break;
      case 2:
        out.splice(at, 0, Math.floor(r() * 256));
        break;
      case 3:
        out.length = at;
        break;
    }
  }
  return new Uint8Array(out);
}

const cases = (parse(readFileSync('../device/testdata/apply_vectors.json', 'utf8')) as unknown as { cases: { pages: unknown[]; column_pages: string[] }[] }).cases;

test('fuzz: the column decoder refuses what it cannot read, and only with malformed_body', () => {
  const r = rng(14);
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const c = cases[i % cases.length];
    const page = new Uint8Array(Buffer.from(c.column_pages[0], 'base64'));
    const input = mutate(page, r);
    try {
      decodeColumns(input);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `input ${i}: ${String(e)}`);
      assert.equal(e.code, 'malformed_body');
      refused++;
    }
  }
  assert.ok(refused > 1000, `only ${refused} of 4000 mutations refused: the mutator is too gentle`);
});

test('answers with members of the wrong type are refused as malformed', () => {
  for (const bad of [
    { refused: 'x' },
    { refused: [{ tbl: 1 }] },
    { conflicts: {} },
    { clock: 'demain' },
    { cursor: 1.5 },
    { rows: [['activite', 'pk', 'x', 'n', {}]] },
    { changes: [{ tbl: 'a', pk: 'b', col: 'c', ver: [1] }] },
    { refused: [{ tbl: 'a', pk: 'b', cols: 'c', code: 'x' }] },
  ]) {
    assert.throws(() => decodeResponse(JSON.stringify(bad)), (e: unknown) => e instanceof ProtocolError && e.code === 'malformed_body', JSON.stringify(bad));
  }
});

test('fuzz: the JSON answer decoder refuses what it cannot read, and only with protocol or syntax errors', () => {
  const r = rng(2026);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  for (let i = 0; i < 4000; i++) {
    const c = cases[i % cases.length];
    const text = dec.decode(mutate(enc.encode(stringify(c.pages[0])), r));
    try {
      decodeResponse(text);
    } catch (e) {
      assert.ok(e instanceof ProtocolError || e instanceof JSONSyntaxError, `input ${i}: ${String(e)}\n${text.slice(0, 200)}`);
    }
  }
});
