import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromMillis, logicalOf, makeTimestamp, millisOf, next } from '../src/hlc.js';
import { parse, stringify } from '../src/json.js';
import { decodeResponse, encodeRequest, encodeRows, decodeRows, type Change } from '../src/proto.js';
import { uuidv7, uuidv7Time, UUID_RE } from '../src/uuid.js';
import { compareNodes } from '../src/version.js';

test('json keeps 64-bit integers exactly and reads everything else as JSON.parse does', () => {
  const cases: [string, unknown][] = [
    ['116654080000000003', 116654080000000003n],
    ['-9223372036854775808', -9223372036854775808n],
    ['9007199254740991', 9007199254740991],
    ['9007199254740992', 9007199254740992n],
    ['1.5', 1.5],
    ['1e3', 1000],
    ['"\\u00e9t\\u00e9 \\"x\\" \\n"', 'été "x" \n'],
    ['[1,{"a":null,"b":[true,false]}]', [1, { a: null, b: [true, false] }]],
    ['  {}  ', {}],
  ];
  for (const [text, want] of cases) assert.deepEqual(parse(text), want, text);
  for (const bad of ['', '{', '[1,]', '01', '1.', '"\\x"', 'nul', '{"a" 1}', '1 2', '"a\u0001"']) {
    assert.throws(() => parse(bad), Error, bad);
  }
  assert.equal(stringify({ a: 116654080000000003n, b: [1, 'x', null], c: undefined }), '{"a":116654080000000003,"b":[1,"x",null]}');
  // round trip of random documents
  for (let i = 0; i < 200; i++) {
    const doc = { n: BigInt.asIntN(64, BigInt(Math.floor(Math.random() * 2 ** 52)) << 11n), s: String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(Math.random() * 0xd7ff))), f: Math.random() };
    const back = parse(stringify(doc)) as typeof doc;
    assert.equal(BigInt(back.n), doc.n);
    assert.equal(back.s, doc.s);
    assert.equal(back.f, doc.f);
  }
});

test('hlc packs milliseconds above a 16-bit counter, beyond 2^53', () => {
  const t = makeTimestamp(1_780_000_000_000, 7);
  assert.ok(t > BigInt(Number.MAX_SAFE_INTEGER));
  assert.equal(millisOf(t), 1_780_000_000_000);
  assert.equal(logicalOf(t), 7);
  assert.equal(next(t, 0n, fromMillis(0)), t + 1n);
  assert.equal(next(0n, 0n, fromMillis(1_780_000_000_001)), makeTimestamp(1_780_000_000_001));
  const max = (1n << 63n) - 1n;
  assert.equal(next(max, max, 0n), max);
});

test('uuidv7: version, variant, time, lower case, and creation order within one millisecond', () => {
  const now = 1_780_000_000_123;
  const ids = Array.from({ length: 5000 }, () => uuidv7(now));
  for (const id of ids) {
    assert.match(id, UUID_RE);
    assert.equal(id[14], '7');
    assert.ok('89ab'.includes(id[19]));
  }
  assert.equal(uuidv7Time(ids[0]), now);
  const sorted = [...ids].sort();
  assert.deepEqual(sorted, ids, 'ids made in a burst sort in creation order');
  assert.equal(new Set(ids).size, ids.length);
});

test('node ids order by UTF-8 bytes, as Go orders strings', () => {
  assert.ok(compareNodes('\uffff', '😀') < 0); // UTF-16 would say the opposite
  assert.ok(compareNodes('a', 'b') < 0);
  assert.equal(compareNodes('é', 'é'), 0);
});

test('rows form: a batch encodes to groups and decodes back to the same changes', () => {
  const v = (h: bigint, n: string) => ({ hlc: h, node: n });
  const base = makeTimestamp(1_780_000_000_000);
  const changes: Change[] = [
    { table: 'activite', pk: 'a', column: 'type', value: 'individuel', version: v(base, 'n1'), prev: v(0n, '') },
    { table: 'activite', pk: 'a', column: 'duree', value: 45, version: v(base, 'n1'), prev: v(base - 5n, 'n2') },
    { table: 'activite', pk: 'a', column: 'duree', value: 60, version: v(base, 'n1'), prev: v(0n, '') },
    { table: 'beneficiaire', pk: 'b', column: 'nom', value: null, version: v(base + 3n, 'n1'), prev: v(0n, '') },
  ];
  const rows = encodeRows(changes);
  assert.equal(rows.length, 3, 'a repeated column starts a new group');
  const back = decodeRows(parse(stringify(rows)));
  assert.deepEqual(back, changes);
  const body = encodeRequest({ push: { id: 'x', changes }, cursor: 12n, clock: base, pending: 4, refuseRows: true, limit: 5000 });
  const o = parse(body) as Record<string, unknown>;
  assert.equal(o.refuse_rows, true);
  assert.equal(o.clock, base);
  const resp = decodeResponse(stringify({ rows, cursor: 99, more: true, clock: base, refused: [{ tbl: 'activite', pk: 'a', cols: ['duree'], code: 'invalid_row', reason: 'La durée', rule: 'duree_activite' }] }));
  assert.deepEqual(resp.changes, changes);
  assert.equal(resp.cursor, 99n);
  assert.equal(resp.refused[0].rule, 'duree_activite');
});
