// The sync page: what waits to be sent, and the changes the server
// refused, each with its French reason, to fix and send again or to give
// up (the server's version then stays).

import { h, replace, frTime, plural } from './dom';
import type { Ctx } from './main';
import type { Rejection } from './sdk/relais.js';
import { enumOf, label, options, ruleProblem, typedValue } from './spec';
import { choices, select } from './form';
import { fieldLabels as activityLabels } from './activites';
import { fieldLabels as beneficiaryLabels } from './beneficiaires';

const tableLabels: Record<string, string> = {
  activite: 'Activité', beneficiaire: 'Bénéficiaire', accompagnement: 'Accompagnement',
  participants_anonymes: 'Participants anonymes', rendez_vous: 'Rendez-vous',
};

export async function refusalsPage(ctx: Ctx): Promise<void> {
  const s = ctx.status;
  const list = await ctx.relais.rejected();
  const groups = new Map<string, Rejection[]>();
  for (const r of list) {
    const key = `${r.table}|${r.pk}|${r.at.getTime()}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  replace(ctx.main,
    h('h1', {}, 'Synchronisation'),
    h('dl', { class: 'etat' },
      h('dt', {}, 'Réseau'), h('dd', { id: 'page-reseau' }, s.online && navigator.onLine ? 'En ligne' : 'Hors ligne'),
      h('dt', {}, 'En attente d\'envoi'), h('dd', {}, s.pending > 0 ? plural(s.pending, 'modification', 'modifications') : 'rien'),
      h('dt', {}, 'Dernière synchronisation'), h('dd', {}, s.lastSync ? frTime(s.lastSync) : 'jamais'),
      h('dt', {}, 'Appareil'), h('dd', {}, s.node)),
    h('h2', {}, 'Modifications refusées par le serveur'),
    groups.size === 0
      ? h('p', { id: 'aucun-refus' }, 'Aucune : tout ce qui a été envoyé a été accepté.')
      : h('ul', { class: 'liste', id: 'liste-refus' }, [...groups.values()].map((g) => refusal(ctx, g))));
}

/** valueLabel shows one of her refused values in French. */
function valueLabel(table: string, column: string, v: unknown): string {
  if (v == null || v === '') return '(vide)';
  const e = enumOf(table, column);
  if (!e) return String(v);
  if (!e.list) return label(e.name, v);
  try {
    return (JSON.parse(String(v)) as unknown[]).map((x) => label(e.name, x)).join(', ');
  } catch {
    return String(v);
  }
}

/** editor is the input for one refused cell: the enum's choices where
 *  the column holds one, a text box otherwise. read returns the value. */
function editor(r: Rejection): { node: HTMLElement; read: () => unknown } {
  const id = `refus-${r.id}-${r.column}`;
  const text = (r.table === 'beneficiaire' ? beneficiaryLabels : activityLabels)[r.column] ?? r.column;
  const e = enumOf(r.table, r.column);
  if (e && e.list) {
    let chosen: string[] = [];
    try { chosen = (JSON.parse(String(r.value ?? '[]')) as unknown[]).map(String); } catch { /* shown empty */ }
    const node = choices(id, text, options(e.name), chosen, true);
    return { node, read: () => {
      const v = Array.from(node.querySelectorAll<HTMLInputElement>('input:checked')).map((i) => i.value);
      return v.length ? JSON.stringify(v) : null;
    } };
  }
  if (e) {
    const sel = select(id, options(e.name), r.value);
    sel.id = id;
    return { node: h('div', { class: 'sous-champ' }, h('label', { for: id }, text), sel), read: () => sel.value || null };
  }
  const input = h('input', { type: 'text', id, value: r.value == null ? '' : String(r.value) });
  return { node: h('div', { class: 'sous-champ' }, h('label', { for: id }, text), input), read: () => typedValue(r.table, r.column, input.value.trim()) };
}

function refusal(ctx: Ctx, g: Rejection[]): HTMLElement {
  const first = g[0]!;
  const message = h('p', { class: 'erreur-champ', role: 'alert', hidden: true });
  const cells = g.filter((r) => r.column !== '_deleted');
  const editors = cells.map((r) => ({ r, ...editor(r) }));
  const retry = async () => {
    message.hidden = true;
    const set: Record<string, unknown> = {};
    for (const e of editors) {
      const now = e.read();
      if (String(now ?? '') !== String(e.r.value ?? '')) set[e.r.column] = now;
    }
    try {
      await ctx.relais.retry(first.id, set);
      ctx.notice('La modification corrigée repartira au prochain passage du réseau.');
      ctx.go('#/synchronisation');
    } catch (err) {
      message.hidden = false;
      message.textContent = ruleProblem(err)?.message ?? String((err as Error)?.message ?? err);
    }
  };
  return h('li', { class: 'carte refus-carte', 'data-table': first.table, 'data-pk': first.pk },
    h('p', { class: 'carte-titre' }, `${tableLabels[first.table] ?? first.table} · refusée ${frTime(first.at)}`),
    h('p', { class: 'raison' }, first.reason),
    h('p', {}, 'Votre saisie : ', cells.map((r) => `${(r.table === 'beneficiaire' ? beneficiaryLabels : activityLabels)[r.column] ?? r.column} : ${valueLabel(r.table, r.column, r.value)}`).join(' · ')),
    h('p', { class: 'aide' }, 'Corrigez ci-dessous puis renvoyez, ou abandonnez votre version : celle du serveur reste alors.'),
    editors.map((e) => e.node),
    message,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'renvoyer', onclick: () => void retry() }, 'Corriger et renvoyer'),
      h('button', { type: 'button', class: 'secondaire abandonner', onclick: async () => {
        await ctx.relais.dismiss(first.id);
        ctx.notice('Votre version est abandonnée ; celle du serveur reste.');
        ctx.go('#/synchronisation');
      } }, 'Abandonner ma version')));
}
