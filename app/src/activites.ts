// Her activities: the list, and the form that records or edits one with
// the Coop's fields. Before anything is written, the domain's rules are
// run on the values (spec.checkRow); a broken rule shows its French
// message next to its field and nothing is saved.

import { h, replace, frDate, frDuration, plural, today } from './dom';
import { choices, checked, clearProblems, field, select, showProblems, summarySlot, textInput, value } from './form';
import type { Ctx } from './main';
import { aideAuxDemarches, checkRow, label, options, ruleProblem, thematiquesAdministratives, typedValue, type Opt, type Problem } from './spec';

const dureesProposees = [15, 30, 45, 60, 90, 120];

/** What the form calls each field, for the list of problems at its top. */
export const fieldLabels: Record<string, string> = {
  type: 'Type d\'activité', date: 'Date', duree: 'Durée', type_lieu: 'Lieu', structure_id: 'Lieu d\'activité',
  commune: 'Commune', code_postal: 'Code postal', code_insee: 'Code INSEE', thematiques: 'Thématiques',
  precisions_demarche: 'Précisions sur la démarche', materiel: 'Matériel utilisé', autonomie: 'Autonomie du bénéficiaire',
  oriente_vers_structure: 'Orientation', structure_de_redirection: 'Structure de redirection', titre_atelier: 'Titre de l\'atelier',
  niveau: 'Niveau de l\'atelier', notes: 'Notes', total: 'Participants anonymes', deja_accompagne: 'Déjà accompagnés',
  beneficiaires: 'Bénéficiaires', nouveau_prenom: 'Prénom de la personne ajoutée', nouveau_nom: 'Nom de la personne ajoutée',
  general: 'Enregistrement',
};

function userId(ctx: Ctx): string {
  return ctx.status.user?.id ?? '';
}

/** pendingIds lists the rows of a table with changes not yet sent. */
async function pendingIds(ctx: Ctx, table: string): Promise<Set<string>> {
  try {
    const rows = await ctx.relais.query<{ pk: string }>('SELECT DISTINCT o.pk FROM _outbox o JOIN _tables t ON t.id = o.tbl WHERE t.name = ?', [table]);
    return new Set(rows.map((r) => r.pk));
  } catch {
    return new Set();
  }
}

export async function activitiesPage(ctx: Ctx): Promise<void> {
  const rows = await ctx.relais.query(`SELECT a.id, a.type, a.date, a.duree, a.type_lieu, a.commune, s.nom AS structure,
      (SELECT group_concat(CASE WHEN b.anonyme = 1 THEN 'Bénéficiaire anonyme' ELSE trim(COALESCE(b.prenom, '') || ' ' || COALESCE(b.nom, '')) END, ', ')
         FROM accompagnement ac JOIN beneficiaire b ON b.id = ac.beneficiaire_id WHERE ac.activite_id = a.id) AS beneficiaires,
      (SELECT total FROM participants_anonymes p WHERE p.activite_id = a.id) AS anonymes
    FROM activite a LEFT JOIN structure s ON s.id = a.structure_id
    WHERE a.mediateur_id = ? OR a.mediateur_id IS NULL
    ORDER BY a.date DESC, a.id DESC LIMIT 500`, [userId(ctx)]);
  const pending = await pendingIds(ctx, 'activite');
  replace(ctx.main,
    h('div', { class: 'titre-page' },
      h('h1', {}, 'Mes activités'),
      h('a', { href: '#/activite/nouvelle', class: 'bouton', id: 'nouvelle-activite' }, 'Enregistrer une activité')),
    rows.length === 0
      ? h('p', { class: 'vide' }, 'Aucune activité sur cet appareil pour l\'instant.')
      : h('ul', { class: 'liste', id: 'liste-activites' }, rows.map((r) => {
        const id = String(r.id);
        const lieu = r.type_lieu === 'lieu_activite' && r.structure ? String(r.structure) : [label('type_lieu', r.type_lieu), r.commune].filter(Boolean).join(' · ');
        const who = [r.beneficiaires, Number(r.anonymes) > 0 ? plural(Number(r.anonymes), 'participant anonyme', 'participants anonymes') : ''].filter(Boolean).join(' · ');
        return h('li', { 'data-id': id },
          h('a', { href: `#/activite/${id}`, class: 'carte' },
            h('span', { class: 'carte-titre' }, `${frDate(r.date)} · ${label('type_activite', r.type) || 'Activité'}`),
            h('span', {}, [lieu, frDuration(r.duree)].filter(Boolean).join(' · ')),
            who ? h('span', { class: 'discret' }, who) : null,
            pending.has(id) ? h('span', { class: 'badge' }, 'En attente d\'envoi') : null));
      })));
}

type Beneficiary = {
  id: string;
  prenom: string | null;
  nom: string | null;
  anonyme: number | null;
};

export async function activityForm(ctx: Ctx, id: string | null): Promise<void> {
  const r = ctx.relais;
  let act: Record<string, unknown> = { type: 'individuel', date: today() };
  let linked: string[] = [];
  let part: Record<string, unknown> | null = null;
  if (id) {
    const [found] = await r.query('SELECT * FROM activite WHERE id = ?', [id]);
    if (!found) {
      replace(ctx.main, h('h1', {}, 'Activité introuvable'),
        h('p', {}, 'Cette activité n\'est plus sur cet appareil (supprimée, ou pas encore reçue).'),
        h('a', { href: '#/activites', class: 'bouton' }, 'Revenir à mes activités'));
      return;
    }
    act = found;
    linked = (await r.query<{ b: string }>('SELECT beneficiaire_id AS b FROM accompagnement WHERE activite_id = ?', [id])).map((x) => x.b);
    [part = null] = await r.query('SELECT * FROM participants_anonymes WHERE activite_id = ?', [id]);
  }
  const structures = await r.query<{ id: string; nom: string; commune: string }>('SELECT id, nom, commune FROM structure ORDER BY nom');
  const people = await r.query<Beneficiary>(`SELECT id, prenom, nom, anonyme FROM beneficiaire
    WHERE (mediateur_id = ? OR mediateur_id IS NULL) ORDER BY anonyme, nom, prenom`, [userId(ctx)]);

  const list = (v: unknown): string[] => {
    try {
      const a = JSON.parse(String(v ?? '[]'));
      return Array.isArray(a) ? a.map(String) : [];
    } catch {
      return [];
    }
  };
  const duree = Number(act.duree) || 0;
  const preset = dureesProposees.includes(duree);
  const numeric = options('thematique').filter((o) => !thematiquesAdministratives.includes(o.value));
  const admin = options('thematique').filter((o) => thematiquesAdministratives.includes(o.value));
  const themes = list(act.thematiques);
  const aideLabel = label('thematique', aideAuxDemarches);

  const form = h('form', { class: 'formulaire', novalidate: true, id: 'formulaire-activite' },
    summarySlot(),
    h('p', { class: 'erreur-champ', id: 'erreur-general', hidden: true }),
    choices('type', 'Type d\'activité', options('type_activite'), [String(act.type ?? '')], false),
    h('div', { class: 'ligne' },
      field('date', 'Date', h('input', { type: 'date', name: 'date', value: String(act.date ?? '') })),
      h('div', {})),
    h('fieldset', { class: 'champ choix', 'data-champ': 'duree', id: 'champ-duree', 'aria-describedby': 'erreur-duree' },
      h('legend', {}, 'Durée'),
      h('p', { class: 'erreur-champ', id: 'erreur-duree', hidden: true }),
      h('div', { class: 'options options-courtes' },
        dureesProposees.map((d, i) => h('div', { class: 'option' },
          h('input', { type: 'radio', name: 'duree', id: `duree-${i}`, value: String(d), checked: duree === d }),
          h('label', { for: `duree-${i}` }, frDuration(d)))),
        h('div', { class: 'option' },
          h('input', { type: 'radio', name: 'duree', id: 'duree-autre', value: 'autre', checked: duree > 0 && !preset }),
          h('label', { for: 'duree-autre' }, 'Autre durée'))),
      h('div', { class: 'sous-champ' },
        h('label', { for: 'duree-minutes' }, 'Autre durée, en minutes'),
        h('input', { type: 'number', inputmode: 'numeric', name: 'duree_minutes', id: 'duree-minutes', min: 1, value: duree > 0 && !preset ? String(duree) : '' }))),
    choices('type_lieu', 'Lieu', options('type_lieu'), [String(act.type_lieu ?? '')], false),
    h('div', { 'data-pour-lieu': 'lieu_activite' },
      field('structure_id', 'Lieu d\'activité', select('structure_id', structures.map((s) => ({ value: s.id, label: s.commune ? `${s.nom} (${s.commune})` : s.nom })), act.structure_id))),
    h('div', { class: 'ligne', 'data-pour-lieu': 'domicile a_distance autre' },
      field('commune', 'Commune', textInput('commune', act.commune, { autocomplete: 'address-level2' })),
      field('code_postal', 'Code postal', textInput('code_postal', act.code_postal, { inputmode: 'numeric', maxlength: 5, autocomplete: 'postal-code' }))),
    h('div', { class: 'champ choix', 'data-champ': 'thematiques', id: 'champ-thematiques', tabindex: '-1' },
      h('p', { class: 'erreur-champ', id: 'erreur-thematiques', hidden: true }),
      themeGroup('Thématiques', numeric, themes, 'th'),
      themeGroup(`Démarches administratives (avec « ${aideLabel} »)`, admin, themes, 'tha')),
    field('precisions_demarche', 'Précisions sur la démarche', textInput('precisions_demarche', act.precisions_demarche),
      `Seulement avec la thématique « ${aideLabel} ».`),
    choices('materiel', 'Matériel utilisé', options('materiel'), list(act.materiel), true),
    h('div', { 'data-pour-type': 'individuel' },
      choices('autonomie', 'Autonomie du bénéficiaire', options('autonomie'), [String(act.autonomie ?? '')], false)),
    h('div', { 'data-pour-type': 'collectif', class: 'ligne' },
      field('titre_atelier', 'Titre de l\'atelier', textInput('titre_atelier', act.titre_atelier)),
      field('niveau', 'Niveau de l\'atelier', select('niveau', options('niveau'), act.niveau))),
    choices('oriente_vers_structure', 'Le bénéficiaire a-t-il été orienté vers une autre structure ?',
      [{ value: '1', label: 'Oui' }, { value: '0', label: 'Non' }],
      act.oriente_vers_structure == null ? [] : [String(act.oriente_vers_structure)], false),
    h('div', { 'data-pour-orientation': '1' },
      field('structure_de_redirection', 'Structure de redirection', select('structure_de_redirection', options('structure_de_redirection'), act.structure_de_redirection))),
    beneficiaryPicker(people, linked),
    h('fieldset', { class: 'champ', 'data-champ': 'total', id: 'champ-total' },
      h('legend', {}, 'Participants anonymes (sans nom)'),
      h('p', { class: 'aide' }, 'Le nombre de personnes accompagnées que vous n\'enregistrez pas par leur nom.'),
      h('p', { class: 'erreur-champ', id: 'erreur-total', hidden: true }),
      h('div', { class: 'ligne ligne-4' },
        counter('total', 'Nombre de participants', part?.total),
        counter('deja_accompagne', 'Dont déjà accompagnés', part?.deja_accompagne),
        counter('genre_feminin', 'Dont femmes', part?.genre_feminin),
        counter('genre_masculin', 'Dont hommes', part?.genre_masculin))),
    field('notes', 'Notes', h('textarea', { name: 'notes', rows: 3 }, String(act.notes ?? ''))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'enregistrer' }, id ? 'Enregistrer les modifications' : 'Enregistrer l\'activité'),
      h('a', { href: '#/activites', class: 'bouton secondaire' }, 'Annuler')));

  const sync = () => {
    const type = value(form, 'type');
    const lieu = value(form, 'type_lieu');
    form.querySelectorAll<HTMLElement>('[data-pour-type]').forEach((e) => { e.hidden = e.dataset.pourType !== type; });
    form.querySelectorAll<HTMLElement>('[data-pour-lieu]').forEach((e) => { e.hidden = !lieu || !e.dataset.pourLieu!.split(' ').includes(lieu); });
    form.querySelectorAll<HTMLElement>('[data-pour-orientation]').forEach((e) => { e.hidden = value(form, 'oriente_vers_structure') !== '1'; });
  };
  form.addEventListener('change', sync);
  form.querySelector('#duree-minutes')?.addEventListener('input', () => {
    const other = form.querySelector<HTMLInputElement>('#duree-autre');
    if (other) other.checked = true;
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void save(ctx, form, id, linked, part);
  });

  replace(ctx.main,
    h('h1', {}, id ? 'Modifier l\'activité' : 'Enregistrer une activité'),
    form,
    id ? deleteBlock(ctx, id) : null);
  sync();
}

function themeGroup(legend: string, opts: Opt[], selected: string[], prefix: string): HTMLElement {
  return h('fieldset', { class: 'sous-groupe' },
    h('legend', {}, legend),
    h('div', { class: 'options' }, opts.map((o, i) => h('div', { class: 'option' },
      h('input', { type: 'checkbox', name: 'thematiques', id: `${prefix}-${i}`, value: o.value, checked: selected.includes(o.value) }),
      h('label', { for: `${prefix}-${i}` }, o.label)))));
}

function counter(name: string, text: string, v: unknown): HTMLElement {
  return h('div', { class: 'sous-champ' },
    h('label', { for: `champ-${name}-n` }, text),
    h('input', { type: 'number', inputmode: 'numeric', min: 0, name, id: `champ-${name}-n`, value: v == null ? '' : String(v) }));
}

function beneficiaryPicker(people: Beneficiary[], linked: string[]): HTMLElement {
  const named = people.filter((p) => p.anonyme !== 1 || linked.includes(p.id));
  const search = h('input', { type: 'search', id: 'recherche-beneficiaire', placeholder: 'Nom ou prénom', autocomplete: 'off' });
  const items = named.map((p, i) => h('div', { class: 'option', 'data-nom': `${p.prenom ?? ''} ${p.nom ?? ''}`.toLocaleLowerCase('fr') },
    h('input', { type: 'checkbox', name: 'beneficiaires', id: `beneficiaire-${i}`, value: p.id, checked: linked.includes(p.id) }),
    h('label', { for: `beneficiaire-${i}` }, p.anonyme === 1 ? 'Bénéficiaire anonyme' : `${p.prenom ?? ''} ${p.nom ?? ''}`.trim())));
  search.addEventListener('input', () => {
    const q = search.value.trim().toLocaleLowerCase('fr');
    items.forEach((it) => { it.hidden = q !== '' && !(it.dataset.nom ?? '').includes(q) && !(it.querySelector('input') as HTMLInputElement).checked; });
  });
  return h('fieldset', { class: 'champ choix', 'data-champ': 'beneficiaires', id: 'champ-beneficiaires' },
    h('legend', {}, 'Bénéficiaires accompagnés'),
    named.length === 0
      ? h('p', { class: 'aide' }, 'Aucun bénéficiaire enregistré. Ajoutez-en depuis « Bénéficiaires », ou comptez les participants anonymes ci-dessous.')
      : [h('label', { for: 'recherche-beneficiaire', class: 'aide' }, 'Rechercher'), search],
    h('p', { class: 'erreur-champ', id: 'erreur-beneficiaires', hidden: true }),
    h('div', { class: 'options' }, items),
    h('fieldset', { class: 'sous-groupe' },
      h('legend', {}, 'Une personne accompagnée pour la première fois'),
      h('p', { class: 'aide' }, 'Elle est ajoutée à vos bénéficiaires en même temps que l\'activité.'),
      h('div', { class: 'ligne' },
        field('nouveau_prenom', 'Prénom', textInput('nouveau_prenom', '')),
        field('nouveau_nom', 'Nom', textInput('nouveau_nom', '')))));
}

function num(v: string): number | null {
  if (v === '') return null;
  const n = Number(v.replace(',', '.'));
  return Number.isFinite(n) ? n : null;
}

/** required are the fields the Coop's form asks for before anything else. */
function missing(row: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  const need: [string, string][] = [
    ['type', 'Choisissez le type d\'activité.'],
    ['date', 'Indiquez la date de l\'activité.'],
    ['duree', 'Indiquez la durée.'],
    ['type_lieu', 'Indiquez où l\'activité a eu lieu.'],
  ];
  for (const [f, msg] of need) if (row[f] == null || row[f] === '') out.push({ rule: 'obligatoire', field: f, message: msg });
  return out;
}

async function save(ctx: Ctx, form: HTMLFormElement, id: string | null, linked: string[], part: Record<string, unknown> | null): Promise<void> {
  const r = ctx.relais;
  clearProblems(form);
  const type = value(form, 'type');
  const lieu = value(form, 'type_lieu');
  const dureeChoice = value(form, 'duree');
  const themes = checked(form, 'thematiques');
  const materiel = checked(form, 'materiel');
  const orient = value(form, 'oriente_vers_structure');
  const row: Record<string, unknown> = {
    type: type || null,
    date: value(form, 'date') || null,
    duree: dureeChoice === 'autre' ? num(value(form, 'duree_minutes')) : num(dureeChoice),
    type_lieu: lieu || null,
    structure_id: lieu === 'lieu_activite' ? value(form, 'structure_id') || null : null,
    commune: lieu && lieu !== 'lieu_activite' ? value(form, 'commune') || null : null,
    code_postal: lieu && lieu !== 'lieu_activite' ? value(form, 'code_postal') || null : null,
    thematiques: themes.length ? JSON.stringify(themes) : null,
    precisions_demarche: value(form, 'precisions_demarche') || null,
    materiel: materiel.length ? JSON.stringify(materiel) : null,
    autonomie: type === 'individuel' ? value(form, 'autonomie') || null : null,
    titre_atelier: type === 'collectif' ? value(form, 'titre_atelier') || null : null,
    niveau: type === 'collectif' ? value(form, 'niveau') || null : null,
    oriente_vers_structure: orient === '' ? null : Number(orient),
    structure_de_redirection: orient === '1' ? value(form, 'structure_de_redirection') || null : null,
    notes: value(form, 'notes') || null,
  };
  const counts: Record<string, unknown> = {};
  for (const c of ['total', 'deja_accompagne', 'genre_feminin', 'genre_masculin']) counts[c] = num(value(form, c));
  const hasCounts = Object.values(counts).some((v) => v != null && v !== 0);
  // A person met for the first time, typed in the form: a new
  // beneficiary, judged by the beneficiary's rules, shown on her fields.
  const newcomer = { anonyme: 0, prenom: value(form, 'nouveau_prenom') || null, nom: value(form, 'nouveau_nom') || null };
  const hasNewcomer = newcomer.prenom !== null || newcomer.nom !== null;
  const problems = missing(row);
  problems.push(...await checkRow(r, 'activite', row));
  if (hasCounts) problems.push(...await checkRow(r, 'participants_anonymes', counts));
  if (hasNewcomer) {
    problems.push(...(await checkRow(r, 'beneficiaire', newcomer)).map((p) => ({ ...p, field: `nouveau_${p.field}` })));
  }
  if (problems.length) {
    showProblems(form, problems, fieldLabels);
    return;
  }
  const actId = id ?? r.uuid();
  const cols = Object.keys(row);
  const vals = cols.map((c) => typedValue('activite', c, row[c]));
  const stmts: { sql: string; params: unknown[] }[] = [];
  if (id) {
    stmts.push({ sql: `UPDATE activite SET ${cols.map((c) => `"${c}" = ?`).join(', ')} WHERE id = ?`, params: [...vals, id] });
  } else {
    stmts.push({ sql: `INSERT INTO activite (id, ${cols.map((c) => `"${c}"`).join(', ')}) VALUES (?, ${cols.map(() => '?').join(', ')})`, params: [actId, ...vals] });
  }
  const chosen = checked(form, 'beneficiaires');
  for (const b of linked.filter((x) => !chosen.includes(x))) {
    stmts.push({ sql: 'DELETE FROM accompagnement WHERE activite_id = ? AND beneficiaire_id = ?', params: [actId, b] });
  }
  if (hasNewcomer) {
    const b = r.uuid();
    stmts.push({ sql: 'INSERT INTO beneficiaire (id, anonyme, prenom, nom) VALUES (?, 0, ?, ?)', params: [b, newcomer.prenom, newcomer.nom] });
    chosen.push(b);
  }
  for (const b of chosen.filter((x) => !linked.includes(x))) {
    stmts.push({ sql: 'INSERT INTO accompagnement (id, activite_id, beneficiaire_id) VALUES (?, ?, ?)', params: [r.uuid(), actId, b] });
  }
  const countCols = Object.keys(counts);
  if (hasCounts && part) {
    stmts.push({ sql: `UPDATE participants_anonymes SET ${countCols.map((c) => `"${c}" = ?`).join(', ')} WHERE id = ?`, params: [...countCols.map((c) => counts[c]), part.id] });
  } else if (hasCounts) {
    stmts.push({ sql: `INSERT INTO participants_anonymes (id, activite_id, ${countCols.map((c) => `"${c}"`).join(', ')}) VALUES (?, ?, ${countCols.map(() => '?').join(', ')})`,
      params: [r.uuid(), actId, ...countCols.map((c) => counts[c])] });
  } else if (part) {
    stmts.push({ sql: 'DELETE FROM participants_anonymes WHERE id = ?', params: [part.id] });
  }
  try {
    await r.transaction(stmts);
  } catch (err) {
    const p = ruleProblem(err);
    showProblems(form, [p ?? { rule: 'erreur', field: 'general', message: `L'enregistrement a échoué : ${String((err as Error)?.message ?? err)}` }], fieldLabels);
    return;
  }
  ctx.notice(id ? 'Activité modifiée. Elle partira au prochain passage du réseau.' : 'Activité enregistrée sur cet appareil. Elle partira au prochain passage du réseau.');
  ctx.go('#/activites');
}

function deleteBlock(ctx: Ctx, id: string): HTMLElement {
  const confirm = h('div', { class: 'confirmer', hidden: true, role: 'alertdialog', 'aria-labelledby': 'confirmer-suppression-titre' },
    h('p', { id: 'confirmer-suppression-titre' }, 'Supprimer définitivement cette activité, sur cet appareil et pour toute l\'équipe ?'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', id: 'confirmer-suppression', onclick: async () => {
        await ctx.relais.transaction([
          { sql: 'DELETE FROM accompagnement WHERE activite_id = ?', params: [id] },
          { sql: 'DELETE FROM participants_anonymes WHERE activite_id = ?', params: [id] },
          { sql: 'DELETE FROM activite WHERE id = ?', params: [id] },
        ]);
        ctx.notice('Activité supprimée.');
        ctx.go('#/activites');
      } }, 'Oui, supprimer'),
      h('button', { type: 'button', class: 'secondaire', onclick: () => { confirm.hidden = true; ask.focus(); } }, 'Non, garder')));
  const ask: HTMLButtonElement = h('button', { type: 'button', class: 'danger secondaire', id: 'supprimer', onclick: () => {
    confirm.hidden = false;
    (confirm.querySelector('#confirmer-suppression') as HTMLElement).focus();
  } }, 'Supprimer cette activité');
  return h('section', { class: 'zone-suppression' }, h('h2', {}, 'Supprimer'), ask, confirm);
}
