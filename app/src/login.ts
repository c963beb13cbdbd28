// Log in: the browser enrols as one of her devices, under the name she
// reads on the coordinators' fleet page ("Tablette de Camille").

import { h, replace } from './dom';
import { field, textInput } from './form';
import { route, startSync, type Ctx } from './main';

/** deviceName proposes a name from the e-mail: camille.martin@… → "Tablette de Camille". */
export function deviceName(email: string): string {
  const first = email.split('@')[0]?.split(/[._-]/)[0] ?? '';
  if (!first) return '';
  const name = first.charAt(0).toLocaleUpperCase('fr') + first.slice(1);
  const kind = /Mobi|Android.*Mobile|iPhone/.test(navigator.userAgent) ? 'Téléphone' : 'Tablette';
  return `${kind} de ${name}`;
}

export async function loginPage(ctx: Ctx): Promise<void> {
  const email = textInput('email', '', { type: 'email', autocomplete: 'username', required: true, inputmode: 'email' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const device = textInput('appareil', '', { maxlength: 64 });
  let named = false;
  device.addEventListener('input', () => { named = true; });
  email.addEventListener('input', () => { if (!named) device.value = deviceName(email.value); });
  const message = h('div', { id: 'erreur-connexion', role: 'alert', class: 'alerte', hidden: true });
  const button = h('button', { type: 'submit', id: 'se-connecter' }, 'Se connecter');
  const form = h('form', { class: 'formulaire', novalidate: true },
    field('email', 'Adresse e-mail', email),
    field('password', 'Mot de passe', password),
    field('appareil', 'Nom de cet appareil', device, 'Ce nom apparaît à votre coordinateur dans la liste des appareils. Vous pouvez le changer.'),
    message,
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    message.hidden = true;
    if (!email.value.trim() || !password.value) {
      message.hidden = false;
      message.textContent = 'Indiquez votre adresse e-mail et votre mot de passe.';
      message.focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Connexion…';
    try {
      await ctx.relais.login(email.value.trim(), password.value, device.value.trim() || deviceName(email.value));
      ctx.status = await ctx.relais.status();
      startSync(ctx);
      ctx.notice('Vous êtes connectée. Les données de votre compte arrivent sur cet appareil.');
      if (location.hash !== '#/activites') location.hash = '#/activites';
      else await route(ctx);
    } catch (err) {
      message.hidden = false;
      message.textContent = String((err as Error)?.message ?? err);
      button.disabled = false;
      button.textContent = 'Se connecter';
      password.focus();
    }
  });
  const s = ctx.status;
  replace(ctx.main,
    h('h1', {}, 'Connexion'),
    s.revoked
      ? h('div', { class: 'alerte', role: 'alert', id: 'revoque' },
        'Cet appareil a été révoqué par votre coordinateur : ses données ont été effacées. Reconnectez-vous pour l\'utiliser à nouveau.')
      : null,
    h('p', {}, 'Connectez-vous une première fois avec le réseau. Ensuite, l\'application fonctionne aussi sans réseau : vos saisies partent dès que le réseau revient.'),
    form);
}
