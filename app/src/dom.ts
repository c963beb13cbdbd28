// A small helper to build DOM nodes: the app has no framework, so that a
// cheap tablet parses little and the code reads as what it shows.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** h builds an element: attributes (on* are listeners; true/false toggles
 *  a boolean attribute) and children (text, nodes, nested lists). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** replace empties el and puts children in it. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** frDate shows an ISO day (2026-11-20) as people read it: 20/11/2026. */
export function frDate(iso: unknown): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso ?? ''));
  return m ? `${m[3]}/${m[2]}/${m[1]}` : '';
}

/** frDuration: 90 → "1 h 30", 45 → "45 min". */
export function frDuration(min: unknown): string {
  const n = Number(min);
  if (!Number.isFinite(n) || n <= 0) return '';
  const hrs = Math.floor(n / 60);
  const m = n % 60;
  if (hrs === 0) return `${m} min`;
  return m === 0 ? `${hrs} h` : `${hrs} h ${String(m).padStart(2, '0')}`;
}

/** frTime: a moment as "aujourd'hui à 10 h 32" or "le 20/11 à 10 h 32". */
export function frTime(d: Date, now = new Date()): string {
  const hm = `${d.getHours()} h ${String(d.getMinutes()).padStart(2, '0')}`;
  if (d.toDateString() === now.toDateString()) return `aujourd'hui à ${hm}`;
  return `le ${String(d.getDate()).padStart(2, '0')}/${String(d.getMonth() + 1).padStart(2, '0')} à ${hm}`;
}

/** today is the local day as ISO (what <input type=date> holds). */
export function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** plural: "1 modification", "3 modifications". */
export function plural(n: number, one: string, many: string): string {
  return `${n} ${n > 1 ? many : one}`;
}
