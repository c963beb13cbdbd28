// Her beneficiaries: the list, the form, and erasure (GDPR): personal
// values cleared here and, at the next sync, on every replica.

import { h, replace, plural } from './dom';
import { choices, clearProblems, field, select, showProblems, summarySlot, textInput, value } from './form';
import type { Ctx } from './main';
import { checkRow, label, options, ruleProblem, typedValue } from './spec';

export const fieldLabels: Record<string, string> = {
  prenom: 'Prénom', nom: 'Nom', telephone: 'Téléphone', pas_de_telephone: 'Pas de téléphone', email: 'E-mail',
  annee_naissance: 'Année de naissance', adresse: 'Adresse', commune: 'Commune', commune_code_postal: 'Code postal',
  commune_code_insee: 'Code INSEE', genre: 'Genre', tranche_age: 'Tranche d\'âge', statut_social: 'Statut social',
  notes: 'Notes', anonyme: 'Anonyme', general: 'Enregistrement',
};

export async function beneficiariesPage(ctx: Ctx): Promise<void> {
  const rows = await ctx.relais.query(`SELECT b.id, b.prenom, b.nom, b.anonyme, b.commune, b.annee_naissance, b.tranche_age,
      (SELECT COUNT(*) FROM accompagnement ac WHERE ac.beneficiaire_id = b.id) AS accompagnements
    FROM beneficiaire b WHERE b.mediateur_id = ? OR b.mediateur_id IS NULL
    ORDER BY b.anonyme, b.nom, b.prenom LIMIT 1000`, [ctx.status.user?.id ?? '']);
  replace(ctx.main,
    h('div', { class: 'titre-page' },
      h('h1', {}, 'Mes bénéficiaires'),
      h('a', { href: '#/beneficiaire/nouveau', class: 'bouton', id: 'nouveau-beneficiaire' }, 'Ajouter un bénéficiaire')),
    rows.length === 0
      ? h('p', { class: 'vide' }, 'Aucun bénéficiaire sur cet appareil pour l\'instant.')
      : h('ul', { class: 'liste', id: 'liste-beneficiaires' }, rows.map((b) => h('li', { 'data-id': String(b.id) },
        h('a', { href: `#/beneficiaire/${b.id}`, class: 'carte' },
          h('span', { class: 'carte-titre' }, b.anonyme === 1 ? 'Bénéficiaire anonyme' : `${b.prenom ?? ''} ${b.nom ?? ''}`.trim()),
          h('span', {}, [b.commune, b.tranche_age ? label('tranche_age', b.tranche_age) : ''].filter(Boolean).join(' · ')),
          h('span', { class: 'discret' }, plural(Number(b.accompagnements), 'accompagnement', 'accompagnements')))))));
}

export async function beneficiaryForm(ctx: Ctx, id: string | null): Promise<void> {
  let b: Record<string, unknown> = { anonyme: 0 };
  if (id) {
    const [found] = await ctx.relais.query('SELECT * FROM beneficiaire WHERE id = ?', [id]);
    if (!found) {
      replace(ctx.main, h('h1', {}, 'Bénéficiaire introuvable'),
        h('p', {}, 'Ce bénéficiaire n\'est plus sur cet appareil.'),
        h('a', { href: '#/beneficiaires', class: 'bouton' }, 'Revenir à mes bénéficiaires'));
      return;
    }
    b = found;
  }
  const anonymous = b.anonyme === 1;
  const form = h('form', { class: 'formulaire', novalidate: true, id: 'formulaire-beneficiaire' },
    summarySlot(),
    h('p', { class: 'erreur-champ', id: 'erreur-general', hidden: true }),
    h('p', { class: 'erreur-champ', id: 'erreur-anonyme', hidden: true }),
    anonymous
      ? h('p', { class: 'encadre' }, 'Ce bénéficiaire a été anonymisé : ses données personnelles ont été effacées. Restent les informations utiles aux statistiques.')
      : [
        h('div', { class: 'ligne' },
          field('prenom', 'Prénom', textInput('prenom', b.prenom, { autocomplete: 'off' })),
          field('nom', 'Nom', textInput('nom', b.nom, { autocomplete: 'off' }))),
        h('div', { class: 'ligne' },
          field('telephone', 'Téléphone', textInput('telephone', b.telephone, { type: 'tel', inputmode: 'tel' })),
          field('email', 'E-mail', textInput('email', b.email, { type: 'email', inputmode: 'email' }))),
        h('div', { class: 'option case-seule' },
          h('input', { type: 'checkbox', name: 'pas_de_telephone', id: 'champ-pas_de_telephone', checked: b.pas_de_telephone === 1 }),
          h('label', { for: 'champ-pas_de_telephone' }, 'N\'a pas de téléphone')),
        field('adresse', 'Adresse', textInput('adresse', b.adresse)),
      ],
    h('div', { class: 'ligne' },
      field('commune', 'Commune', textInput('commune', b.commune)),
      field('commune_code_postal', 'Code postal', textInput('commune_code_postal', b.commune_code_postal, { inputmode: 'numeric', maxlength: 5 }))),
    h('div', { class: 'ligne' },
      field('annee_naissance', 'Année de naissance', textInput('annee_naissance', b.annee_naissance, { inputmode: 'numeric', maxlength: 4 })),
      field('tranche_age', 'Tranche d\'âge', select('tranche_age', options('tranche_age'), b.tranche_age))),
    choices('genre', 'Genre', options('genre'), [String(b.genre ?? '')], false),
    field('statut_social', 'Statut social', select('statut_social', options('statut_social'), b.statut_social)),
    anonymous ? null : field('notes', 'Notes', h('textarea', { name: 'notes', rows: 3 }, String(b.notes ?? '')),
      'Notez le strict nécessaire : ces notes sont des données personnelles.'),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'enregistrer' }, id ? 'Enregistrer les modifications' : 'Enregistrer le bénéficiaire'),
      h('a', { href: '#/beneficiaires', class: 'bouton secondaire' }, 'Annuler')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void save(ctx, form, id, anonymous);
  });
  replace(ctx.main,
    h('h1', {}, id ? (anonymous ? 'Bénéficiaire anonyme' : `${b.prenom ?? ''} ${b.nom ?? ''}`.trim() || 'Bénéficiaire') : 'Ajouter un bénéficiaire'),
    form,
    id && !anonymous ? eraseBlock(ctx, id) : null);
}

async function save(ctx: Ctx, form: HTMLFormElement, id: string | null, anonymous: boolean): Promise<void> {
  const r = ctx.relais;
  clearProblems(form);
  const row: Record<string, unknown> = {
    commune: value(form, 'commune') || null,
    commune_code_postal: value(form, 'commune_code_postal') || null,
    annee_naissance: value(form, 'annee_naissance') || null,
    tranche_age: value(form, 'tranche_age') || null,
    genre: value(form, 'genre') || null,
    statut_social: value(form, 'statut_social') || null,
  };
  if (!anonymous) {
    Object.assign(row, {
      anonyme: 0,
      prenom: value(form, 'prenom') || null,
      nom: value(form, 'nom') || null,
      telephone: value(form, 'telephone') || null,
      email: value(form, 'email') || null,
      pas_de_telephone: (form.querySelector('#champ-pas_de_telephone') as HTMLInputElement | null)?.checked ? 1 : 0,
      adresse: value(form, 'adresse') || null,
      notes: value(form, 'notes') || null,
    });
  }
  const problems = await checkRow(r, 'beneficiaire', { ...row, anonyme: anonymous ? 1 : 0 });
  if (problems.length) {
    showProblems(form, problems, fieldLabels);
    return;
  }
  const cols = Object.keys(row);
  const vals = cols.map((c) => typedValue('beneficiaire', c, row[c]));
  try {
    if (id) {
      await r.exec(`UPDATE beneficiaire SET ${cols.map((c) => `"${c}" = ?`).join(', ')} WHERE id = ?`, [...vals, id]);
    } else {
      await r.exec(`INSERT INTO beneficiaire (id, ${cols.map((c) => `"${c}"`).join(', ')}) VALUES (?, ${cols.map(() => '?').join(', ')})`, [r.uuid(), ...vals]);
    }
  } catch (err) {
    const p = ruleProblem(err);
    showProblems(form, [p ?? { rule: 'erreur', field: 'general', message: `L'enregistrement a échoué : ${String((err as Error)?.message ?? err)}` }], fieldLabels);
    return;
  }
  ctx.notice(id ? 'Bénéficiaire modifié.' : 'Bénéficiaire enregistré.');
  ctx.go('#/beneficiaires');
}

function eraseBlock(ctx: Ctx, id: string): HTMLElement {
  const confirm = h('div', { class: 'confirmer', hidden: true, role: 'alertdialog', 'aria-labelledby': 'confirmer-effacement-titre' },
    h('p', { id: 'confirmer-effacement-titre' },
      'Effacer le nom, le prénom, le téléphone, l\'e-mail, l\'adresse et les notes de ce bénéficiaire ? ',
      'Ils seront effacés de cet appareil maintenant, et de tous les autres à leur prochaine synchronisation. Les accompagnements restent comptés, sans son nom. C\'est définitif.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', id: 'confirmer-effacement', onclick: async () => {
        await ctx.relais.erase(id);
        ctx.notice('Les données personnelles du bénéficiaire ont été effacées.');
        ctx.go('#/beneficiaires');
      } }, 'Oui, effacer ses données'),
      h('button', { type: 'button', class: 'secondaire', onclick: () => { confirm.hidden = true; ask.focus(); } }, 'Non, garder')));
  const ask: HTMLButtonElement = h('button', { type: 'button', class: 'danger secondaire', id: 'effacer', onclick: () => {
    confirm.hidden = false;
    (confirm.querySelector('#confirmer-effacement') as HTMLElement).focus();
  } }, 'Effacer ses données personnelles');
  return h('section', { class: 'zone-suppression' },
    h('h2', {}, 'Droit à l\'effacement (RGPD)'),
    h('p', {}, 'À la demande de la personne, ou quand vous ne l\'accompagnez plus.'),
    ask, confirm);
}
