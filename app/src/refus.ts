// The sync page: what waits to be sent, and the changes the server
// refused, each with its French reason, to fix and send again or to give
// up (the server's version then stays).

import { h, replace, frTime, plural } from './dom';
import type { Ctx } from './main';
import type { Rejection } from './sdk/relais.js';
import { ruleProblem, typedValue } from './spec';
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

function refusal(ctx: Ctx, g: Rejection[]): HTMLElement {
  const first = g[0]!;
  const message = h('p', { class: 'erreur-champ', role: 'alert', hidden: true });
  const inputs = g.filter((r) => r.column !== '_deleted').map((r) => {
    const id = `refus-${r.id}-${r.column}`;
    return h('div', { class: 'sous-champ' },
      h('label', { for: id }, (r.table === 'beneficiaire' ? beneficiaryLabels : activityLabels)[r.column] ?? r.column),
      h('input', { type: 'text', id, 'data-colonne': r.column, value: r.value == null ? '' : String(r.value) }));
  });
  const retry = async () => {
    message.hidden = true;
    const set: Record<string, unknown> = {};
    for (const div of inputs) {
      const input = div.querySelector('input') as HTMLInputElement;
      const col = input.dataset.colonne!;
      const before = g.find((r) => r.column === col)?.value;
      const now = input.value.trim();
      if (String(before ?? '') !== now) set[col] = typedValue(first.table, col, now);
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
    inputs,
    message,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'renvoyer', onclick: () => void retry() }, 'Corriger et renvoyer'),
      h('button', { type: 'button', class: 'secondaire abandonner', onclick: async () => {
        await ctx.relais.dismiss(first.id);
        ctx.notice('Votre version est abandonnée ; celle du serveur reste.');
        ctx.go('#/synchronisation');
      } }, 'Abandonner ma version')));
}
