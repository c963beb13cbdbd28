// Form fields built the same way everywhere: a visible label tied to its
// input, a hint, and a slot for the French message of a broken rule, tied
// to the input by aria-describedby so a screen reader reads it too.

import { h } from './dom';
import type { Opt, Problem } from './spec';

export function fieldId(name: string): string {
  return `champ-${name}`;
}

function errorSlot(name: string): HTMLElement {
  return h('p', { class: 'erreur-champ', id: `erreur-${name}`, hidden: true });
}

/** field wraps one input with its label, hint and error slot. */
export function field(name: string, labelText: string, input: HTMLElement, hint?: string): HTMLElement {
  input.id = fieldId(name);
  const described = [`erreur-${name}`];
  if (hint) described.unshift(`aide-${name}`);
  input.setAttribute('aria-describedby', described.join(' '));
  return h('div', { class: 'champ', 'data-champ': name },
    h('label', { for: input.id }, labelText),
    hint ? h('p', { class: 'aide', id: `aide-${name}` }, hint) : null,
    errorSlot(name),
    input);
}

export function textInput(name: string, value: unknown, attrs: Record<string, string | number | boolean> = {}): HTMLInputElement {
  return h('input', { type: 'text', name, value: value == null ? '' : String(value), autocomplete: 'off', ...attrs });
}

export function select(name: string, opts: Opt[], value: unknown, empty = '— Choisir —'): HTMLSelectElement {
  const v = value == null ? '' : String(value);
  return h('select', { name },
    h('option', { value: '' }, empty),
    opts.map((o) => h('option', { value: o.value, selected: o.value === v }, o.label)));
}

/** choices is a group of radio buttons (multiple=false) or check boxes,
 *  in a fieldset whose legend is the question. */
export function choices(name: string, legend: string, opts: Opt[], selected: string[], multiple: boolean, hint?: string, extra?: (o: Opt) => Node | null): HTMLElement {
  return h('fieldset', { class: 'champ choix', 'data-champ': name, id: fieldId(name), 'aria-describedby': `erreur-${name}` },
    h('legend', {}, legend),
    hint ? h('p', { class: 'aide' }, hint) : null,
    errorSlot(name),
    h('div', { class: 'options' }, opts.map((o, i) => {
      const id = `${name}-${i}`;
      return h('div', { class: 'option' },
        h('input', { type: multiple ? 'checkbox' : 'radio', name, id, value: o.value, checked: selected.includes(o.value) }),
        h('label', { for: id }, o.label),
        extra ? extra(o) : null);
    })));
}

/** checked returns the values ticked in a group. */
export function checked(form: HTMLFormElement, name: string): string[] {
  return Array.from(form.querySelectorAll<HTMLInputElement>(`input[name="${name}"]:checked`)).map((i) => i.value);
}

export function value(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name);
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) return el.value.trim();
  if (el instanceof RadioNodeList) return el.value.trim();
  return '';
}

/** showProblems puts each message next to its field, lists them all at
 *  the top of the form (each a link to its field) and moves the focus
 *  there, so nobody misses why nothing was saved. */
export function showProblems(form: HTMLFormElement, problems: Problem[], labels: Record<string, string>): void {
  clearProblems(form);
  const summary = form.querySelector<HTMLElement>('.resume-erreurs');
  if (problems.length === 0 || !summary) return;
  const items: HTMLElement[] = [];
  for (const p of problems) {
    const slot = form.querySelector<HTMLElement>(`#erreur-${p.field}`) ?? form.querySelector<HTMLElement>('#erreur-general');
    if (slot) {
      slot.hidden = false;
      slot.append(h('span', { 'data-regle': p.rule }, capitalized(p.message)), ' ');
      slot.closest('.champ')?.classList.add('en-erreur');
      form.querySelector(`#${fieldId(p.field)}`)?.setAttribute('aria-invalid', 'true');
    }
    items.push(h('li', {}, h('a', { href: `#${fieldId(p.field)}`, onclick: (ev: Event) => {
      ev.preventDefault();
      focusField(form, p.field);
    } }, `${labels[p.field] ?? p.field} : ${p.message}`)));
  }
  summary.hidden = false;
  summary.replaceChildren(
    h('h2', {}, problems.length > 1 ? 'Rien n\'est enregistré : il y a des points à corriger' : 'Rien n\'est enregistré : un point est à corriger'),
    h('ul', {}, items));
  summary.focus();
}

/** capitalized: the domain's messages start in lower case, to follow a
 *  field's name; alone next to the field they start a sentence. */
function capitalized(s: string): string {
  return s.charAt(0).toLocaleUpperCase('fr') + s.slice(1);
}

export function clearProblems(form: HTMLFormElement): void {
  form.querySelectorAll<HTMLElement>('.erreur-champ').forEach((e) => { e.hidden = true; e.replaceChildren(); });
  form.querySelectorAll('.en-erreur').forEach((e) => e.classList.remove('en-erreur'));
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  const summary = form.querySelector<HTMLElement>('.resume-erreurs');
  if (summary) { summary.hidden = true; summary.replaceChildren(); }
}

function focusField(form: HTMLFormElement, name: string): void {
  const el = form.querySelector<HTMLElement>(`#${fieldId(name)}`);
  const target = el?.matches('fieldset') ? el.querySelector<HTMLElement>('input') : el;
  target?.focus();
}

/** summarySlot is where showProblems lists the problems. */
export function summarySlot(): HTMLElement {
  return h('div', { class: 'resume-erreurs', role: 'alert', tabindex: '-1', hidden: true });
}
