// What the app knows of the domain, read from generated/spec.json, which
// Go writes from package domain (app/spec.go). Nothing here re-states a
// rule: checkRow runs each rule's own SQL on the values about to be
// saved, in the local SQLite, and returns the rules' French messages.

import spec from './generated/spec.json';
import type { Relais } from './sdk/relais.js';

export interface Opt {
  value: string;
  label: string;
}

interface RuleSpec {
  name: string;
  field: string;
  message: string;
}

interface TableCheck {
  columns: string[];
  types: Record<string, string>;
  query: string;
  rules: RuleSpec[];
}

const enums = spec.enums as Record<string, Opt[]>;
const checks = spec.checks as Record<string, TableCheck>;
const enumColumns = spec.enum_columns as Record<string, { enum: string; list?: boolean }>;

/** enumOf names the enum a column holds, if any, and whether it holds a
 *  JSON list of its values. */
export function enumOf(table: string, column: string): { name: string; list: boolean } | null {
  const c = enumColumns[`${table}.${column}`];
  return c ? { name: c.enum, list: c.list === true } : null;
}

export const aideAuxDemarches: string = spec.aide_aux_demarches;
export const thematiquesAdministratives: string[] = spec.thematiques_administratives;

/** options lists an enum's values with their official labels, in order. */
export function options(enumName: string): Opt[] {
  const o = enums[enumName];
  if (!o) throw new Error(`enum inconnue : ${enumName}`);
  return o;
}

/** label is the French label of a stored value (the value itself if unknown). */
export function label(enumName: string, value: unknown): string {
  const v = String(value ?? '');
  return enums[enumName]?.find((o) => o.value === v)?.label ?? v;
}

/** A broken rule, placed on the form's field that should change. */
export interface Problem {
  rule: string;
  field: string;
  message: string;
}

/** typed converts a form value to the column's SQLite type, so that the
 *  rules compare numbers with numbers as the table would store them. */
function typed(type: string | undefined, v: unknown): unknown {
  if (v === undefined || v === null || v === '') return null;
  if ((type === 'INTEGER' || type === 'REAL') && typeof v === 'string') {
    const n = Number(v.trim().replace(',', '.'));
    return Number.isFinite(n) ? n : v;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

/** checkRow evaluates every domain rule of table on row (column → value)
 *  before it is written, and returns those broken. */
export async function checkRow(relais: Relais, table: string, row: Record<string, unknown>): Promise<Problem[]> {
  const tc = checks[table];
  if (!tc) return [];
  const params = tc.columns.map((c) => typed(tc.types[c], row[c]));
  const [flags] = await relais.query(tc.query, params);
  const broken: Problem[] = [];
  if (!flags) return broken;
  tc.rules.forEach((r, i) => {
    if (Number(flags[`r${i}`]) !== 0) broken.push({ rule: r.name, field: r.field, message: r.message });
  });
  return broken;
}

/** ruleProblem turns a rule the device's triggers enforced (a RelaisError
 *  with code 'rule', or its raw message) into a Problem on its field. */
export function ruleProblem(err: unknown): Problem | null {
  const e = err as { code?: string; rule?: string; message?: string };
  let name = e?.code === 'rule' ? e.rule : undefined;
  const msg = String(e?.message ?? '');
  const at = msg.indexOf(spec.rule_abort_prefix);
  if (!name && at >= 0) name = msg.slice(at + spec.rule_abort_prefix.length).split(':')[0];
  if (!name) return null;
  for (const tc of Object.values(checks)) {
    const r = tc.rules.find((x) => x.name === name);
    if (r) return { rule: r.name, field: r.field, message: r.message };
  }
  return null;
}

/** typedRow applies the column types of table's rules to row, for writing. */
export function typedValue(table: string, column: string, v: unknown): unknown {
  return typed(checks[table]?.types[column], v);
}
