// JSON that keeps 64-bit integers. JSON.parse rounds every number to a
// double, which would change clock readings (about 2^57) and sequence
// numbers; this parser returns integers beyond 2^53 as bigint and every
// other number as number. stringify writes bigint as a plain integer.

export type JSONValue = null | boolean | number | bigint | string | JSONValue[] | { [k: string]: JSONValue };

export class JSONSyntaxError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Parses text; throws JSONSyntaxError on anything that is not one JSON value. */
export function parse(text: string): JSONValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new JSONSyntaxError(`JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const str = (): string => {
    // i is on the opening quote. Fast path: no escapes.
    const start = ++i;
    let j = start;
    while (j < text.length) {
      const c = text.charCodeAt(j);
      if (c === 0x22) {
        i = j + 1;
        return text.slice(start, j);
      }
      if (c === 0x5c || c < 0x20) break;
      j++;
    }
    let out = text.slice(start, j);
    i = j;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c !== 0x5c) {
        out += text[i++];
        continue;
      }
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const h = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(h, 16));
          i += 4;
          break;
        }
        default:
          fail('bad escape');
      }
    }
    return fail('unterminated string');
  };
  const num = (): number | bigint => {
    const m = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (!r) return fail('bad number');
    i += r[0].length;
    if (r[2] === undefined && r[3] === undefined) {
      const n = Number(r[0]);
      return Number.isSafeInteger(n) ? n : BigInt(r[0]);
    }
    return Number(r[0]);
  };
  const value = (depth: number): JSONValue => {
    if (depth > 512) fail('nested too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o: { [k: string]: JSONValue } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('want a member name');
        const k = str();
        ws();
        if (text[i++] !== ':') fail("want ':'");
        const v = value(depth + 1);
        if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
        ws();
        const d = text[i++];
        if (d === '}') return o;
        if (d !== ',') fail("want ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const a: JSONValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        const d = text[i++];
        if (d === ']') return a;
        if (d !== ',') fail("want ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (c === '-' || (c >= '0' && c <= '9')) return num();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    return fail('unexpected character');
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('data after the JSON value');
  return v;
}

/** Writes v as JSON; bigint as an integer, undefined members left out. */
export function stringify(v: unknown): string {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) throw new Error('JSON: a number that is not finite');
      return String(v);
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) return '[' + v.map((x) => (x === undefined ? 'null' : stringify(x))).join(',') + ']';
      const parts: string[] = [];
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined) continue;
        parts.push(JSON.stringify(k) + ':' + stringify(x));
      }
      return '{' + parts.join(',') + '}';
    }
  }
  throw new Error(`JSON: cannot write a ${typeof v}`);
}
