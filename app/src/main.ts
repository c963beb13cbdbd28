// The conseillère's app: boot, the header with the sync indicator, and
// the router between pages (the part after # in the address, so that the
// one page the service worker keeps opens every screen offline).

import { h, replace, frTime, plural } from './dom';
import { open } from './sdk/relais.js';
import type { Relais, Status } from './sdk/relais.js';
import { loginPage } from './login';
import { activitiesPage, activityForm } from './activites';
import { beneficiariesPage, beneficiaryForm } from './beneficiaires';
import { refusalsPage } from './refus';

export interface Ctx {
  relais: Relais;
  status: Status;
  main: HTMLElement;
  /** go changes page. */
  go(hash: string): void;
  /** notice shows a short confirmation at the top of the next page. */
  notice(text: string): void;
}

let pendingNotice = '';
let stopAutoSync: (() => void) | null = null;

async function boot(): Promise<void> {
  registerServiceWorker();
  const main = document.getElementById('contenu') as HTMLElement;
  let relais: Relais;
  try {
    relais = await openReplica();
    performance.mark('relais-ouvert'); // BenchmarkAppOpensOffline reads these marks
  } catch (err) {
    replace(main, h('div', { class: 'alerte', role: 'alert' },
      h('h1', {}, 'L\'application ne peut pas démarrer'),
      h('p', {}, String((err as Error)?.message ?? err)),
      h('p', {}, 'La toute première ouverture a besoin du réseau. Reconnectez la tablette puis rechargez la page.')));
    return;
  }
  const ctx: Ctx = {
    relais,
    status: await relais.status(),
    main,
    go: (hash) => {
      if (location.hash === hash) void route(ctx);
      else location.hash = hash;
    },
    notice: (text) => { pendingNotice = text; },
  };
  (window as unknown as { relais: Relais }).relais = relais; // for the end-to-end tests and curious developers
  relais.on('status', (s) => {
    const wasIn = ctx.status.loggedIn;
    ctx.status = s;
    void renderIndicator(ctx);
    if (s.revoked || (wasIn && !s.loggedIn)) void route(ctx);
  });
  relais.on('change', (e) => {
    // A wipe is followed by a status event, which shows the login page.
    if (e.source === 'sync') void refreshList(ctx, e.tables);
  });
  window.addEventListener('online', () => void relais.status().then((s) => { ctx.status = s; void renderIndicator(ctx); }));
  window.addEventListener('offline', () => void relais.status().then((s) => { ctx.status = s; void renderIndicator(ctx); }));
  window.addEventListener('hashchange', () => void route(ctx));
  // Leaving the page lets the replica go, so that the next page of the
  // app (in this tab or another) can open it; a page the browser brings
  // back from its back-forward cache then starts again.
  window.addEventListener('pagehide', () => void relais.close());
  window.addEventListener('pageshow', (ev) => { if (ev.persisted) location.reload(); });
  void renderIndicator(ctx);
  if (ctx.status.loggedIn) stopAutoSync = relais.startAutoSync();
  await route(ctx);
  document.body.dataset.pret = '1'; // the page is drawn: tests wait for this
  performance.mark('relais-pret');
}

/** openReplica opens the SDK. The replica's files in OPFS are held by
 *  one page at a time: a page of the app just left (kept by the browser
 *  in its back-forward cache, or still closing) may hold them for a
 *  moment, so opening is tried again for a few seconds before giving up. */
async function openReplica(): Promise<Relais> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await open({ appVersion: 'app/1' });
    } catch (err) {
      if (attempt >= 10 || !/Access Handle|autre onglet/i.test(String((err as Error)?.message ?? err))) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** startSync starts the automatic sync once she is logged in. */
export function startSync(ctx: Ctx): void {
  stopAutoSync?.();
  stopAutoSync = ctx.relais.startAutoSync();
}

function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('./sw.js', { scope: './' }).catch(() => {
    // Without it the app still works online; offline it will not open.
  });
}

let routing: Promise<void> = Promise.resolve();

/** route draws the page the address names. Calls are run one after the
 *  other, so that a page drawn for an older event (a list refreshed by a
 *  sync) never covers one drawn for a newer one (the login page after a
 *  revocation). */
export function route(ctx: Ctx): Promise<void> {
  routing = routing.then(() => draw(ctx)).catch((err) => {
    replace(ctx.main, h('div', { class: 'alerte', role: 'alert' }, h('h1', {}, 'Cette page ne peut pas s\'afficher'), h('p', {}, String((err as Error)?.message ?? err))));
  });
  return routing;
}

async function draw(ctx: Ctx): Promise<void> {
  const hash = location.hash || '#/activites';
  const nav = document.getElementById('navigation');
  if (!ctx.status.loggedIn) {
    if (nav) nav.hidden = true;
    await loginPage(ctx);
    focusTitle(ctx);
    return;
  }
  if (nav) {
    nav.hidden = false;
    nav.querySelectorAll('a').forEach((a) => {
      if (hash.startsWith(a.getAttribute('href') ?? '-')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }
  const [, page, id] = hash.split('/');
  switch (page) {
    case 'activite':
      await activityForm(ctx, id === 'nouvelle' ? null : id ?? null);
      break;
    case 'beneficiaires':
      await beneficiariesPage(ctx);
      break;
    case 'beneficiaire':
      await beneficiaryForm(ctx, id === 'nouveau' ? null : id ?? null);
      break;
    case 'synchronisation':
      await refusalsPage(ctx);
      break;
    default:
      await activitiesPage(ctx);
  }
  if (pendingNotice) {
    ctx.main.prepend(h('p', { class: 'confirmation', role: 'status' }, pendingNotice));
    pendingNotice = '';
  }
  focusTitle(ctx);
}

function focusTitle(ctx: Ctx): void {
  const h1 = ctx.main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus();
  }
}

/** refreshList redraws a list page when a sync changed its tables. */
async function refreshList(ctx: Ctx, tables: string[]): Promise<void> {
  const hash = location.hash || '#/activites';
  const lists: Record<string, string[]> = {
    '#/activites': ['activite', 'accompagnement', 'beneficiaire'],
    '#/beneficiaires': ['beneficiaire'],
    '#/synchronisation': ['activite', 'beneficiaire', 'accompagnement', 'participants_anonymes'],
  };
  const watch = lists[hash];
  if (ctx.status.loggedIn && watch && tables.some((t) => watch.includes(t))) {
    const focused = document.activeElement?.id;
    await route(ctx);
    if (focused) document.getElementById(focused)?.focus();
  }
}

/** waitingRecords counts the records (an activity with its
 *  beneficiaries and counts, a beneficiary) with changes not yet sent:
 *  what she saved, rather than the cells the SDK counts. */
async function waitingRecords(ctx: Ctx): Promise<number> {
  if (ctx.status.pending === 0) return 0;
  try {
    // The outbox names tables by their number in the replica's dictionary.
    const [r] = await ctx.relais.query(`SELECT COUNT(DISTINCT CASE WHEN t.name IN ('accompagnement', 'participants_anonymes')
        THEN 'activite:' || COALESCE((SELECT activite_id FROM accompagnement WHERE id = o.pk), (SELECT activite_id FROM participants_anonymes WHERE id = o.pk), o.pk)
        ELSE t.name || ':' || o.pk END) AS n FROM _outbox o JOIN _tables t ON t.id = o.tbl`);
    return Number(r?.n ?? ctx.status.pending);
  } catch {
    return ctx.status.pending;
  }
}

let drawn = 0;

/** renderIndicator draws the sync state in the header: online or not,
 *  what waits to be sent, the last sync, and the refused changes. */
async function renderIndicator(ctx: Ctx): Promise<void> {
  const el = document.getElementById('etat-synchro');
  if (!el) return;
  const s = ctx.status;
  if (!s.loggedIn) {
    el.hidden = true;
    return;
  }
  const turn = ++drawn;
  const waiting = await waitingRecords(ctx);
  if (turn !== drawn) return; // a newer status is being drawn
  el.hidden = false;
  const online = s.online && navigator.onLine;
  const state = !online ? 'hors-ligne' : s.syncing ? 'synchro' : 'en-ligne';
  el.dataset.etat = state;
  replace(el,
    h('p', { class: 'reseau', id: 'reseau' },
      h('span', { class: 'pastille', 'aria-hidden': 'true' }),
      state === 'hors-ligne' ? 'Hors ligne' : state === 'synchro' ? 'Synchronisation…' : 'En ligne'),
    h('p', { id: 'en-attente' }, waiting > 0 ? `${plural(waiting, 'fiche', 'fiches')} en attente d'envoi` : 'Tout est envoyé'),
    h('p', { id: 'derniere-synchro' }, s.lastSync ? `Dernière synchronisation ${frTime(s.lastSync)}` : 'Jamais synchronisée'),
    s.rejected > 0
      ? h('p', { id: 'refus', class: 'refus' }, h('a', { href: '#/synchronisation' }, `${plural(s.rejected, 'modification refusée', 'modifications refusées')} : à corriger`))
      : null,
    s.lastError && !s.syncing ? h('p', { id: 'erreur-synchro', class: 'erreur-synchro' }, s.lastError) : null,
    h('button', { type: 'button', id: 'synchroniser', class: 'secondaire', disabled: s.syncing, onclick: () => void syncNow(ctx) }, 'Synchroniser maintenant'));
  const warn = document.getElementById('avertissement-stockage');
  if (warn) {
    warn.hidden = !s.storageWarning;
    warn.textContent = s.storageWarning ?? '';
  }
}

async function syncNow(ctx: Ctx): Promise<void> {
  try {
    await ctx.relais.sync();
  } catch {
    // The status event carries the French error, shown by the indicator.
  }
  ctx.status = await ctx.relais.status();
  void renderIndicator(ctx);
}

void boot();
