import { api, session } from '../api.js';
import { h, clear, errorBox } from '../ui.js';

export function render(root, { onLoggedIn }) {
  const msg = h('div', { class: 'msg' });
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { class: 'btn btn-primary wide', type: 'submit' }, 'Log in');
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Serverbox'),
    h('p', { class: 'muted' }, 'Sign in to the control plane.'),
    h('label', { for: 'username' }, 'Username'), user,
    h('label', { for: 'password' }, 'Password'), pass,
    msg, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    clear(msg);
    try {
      const r = await api('POST', '/api/v1/auth/login', { username: user.value.trim(), password: pass.value });
      pass.value = '';
      if (r.second_factor === 'totp') return secondStep(r);
      session.csrf = r.csrf_token;
      await onLoggedIn(r);
    } catch (err) {
      clear(msg, errorBox(err));
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  clear(root, h('div', { class: 'center' }, form));
  document.title = 'Log in · Serverbox';
  user.focus();

  // Single sign-on: the core's callback sends the browser back here with
  // the session's CSRF token (#sso=…) or the reason it refused (#sso_error=…).
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.has('sso') || frag.has('sso_error') || frag.has('totp')) history.replaceState(null, '', '/login');
  if (frag.has('totp')) return secondStep({ challenge: frag.get('totp') });
  if (frag.has('sso')) {
    session.csrf = frag.get('sso');
    onLoggedIn({});
    return;
  }
  if (frag.has('sso_error')) clear(msg, h('div', { class: 'alert alert-error', role: 'alert', id: 'sso-error' }, frag.get('sso_error')));
  api('GET', '/api/v1/auth/oidc').then((o) => {
    if (!o?.enabled) return;
    const sso = h('a', { class: 'btn wide', id: 'sso-login', href: o.start }, `Sign in with ${o.name}`);
    form.append(h('p', { class: 'muted center-text' }, 'or'), sso);
    if (!o.password_login) msg.append(h('p', { class: 'muted', id: 'password-login-off' }, 'Password login is off here; only the break-glass account may use it.'));
  }).catch(() => { /* no SSO offered */ });

  // With 2FA the password step answers a challenge: a code from the app (or
  // a recovery code) exchanges it for the session.
  function secondStep(first) {
    const msg2 = h('div', { class: 'msg' });
    let recovery = false;
    const label = h('label', { for: 'totp-login-code' }, 'Code from your authenticator app');
    const code = h('input', { id: 'totp-login-code', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, maxlength: 6, pattern: '[0-9]{6}' });
    const toggle = h('button', { class: 'btn btn-ghost', type: 'button', id: 'totp-use-recovery' }, 'Use a recovery code');
    const go = h('button', { class: 'btn btn-primary wide', type: 'submit' }, 'Verify');
    toggle.addEventListener('click', () => {
      recovery = !recovery;
      label.textContent = recovery ? 'Recovery code' : 'Code from your authenticator app';
      code.value = '';
      if (recovery) { code.removeAttribute('maxlength'); code.removeAttribute('pattern'); code.setAttribute('inputmode', 'text'); code.setAttribute('autocomplete', 'off'); } else { code.setAttribute('maxlength', '6'); code.setAttribute('pattern', '[0-9]{6}'); code.setAttribute('inputmode', 'numeric'); code.setAttribute('autocomplete', 'one-time-code'); }
      toggle.textContent = recovery ? 'Use a code from the app' : 'Use a recovery code';
      code.focus();
    });
    const f2 = h('form', { class: 'card login', id: 'totp-login', 'aria-labelledby': 'totp-title' },
      h('h1', { id: 'totp-title' }, 'Two-factor authentication'),
      h('p', { class: 'muted' }, 'Enter the 6-digit code for Serverbox.'),
      label, code, msg2, go, toggle);
    f2.addEventListener('submit', async (e) => {
      e.preventDefault();
      go.disabled = true;
      clear(msg2);
      try {
        const body = recovery ? { challenge: first.challenge, recovery_code: code.value.trim() } : { challenge: first.challenge, code: code.value.trim() };
        const r = await api('POST', '/api/v1/auth/login/totp', body);
        session.csrf = r.csrf_token;
        await onLoggedIn(r);
      } catch (err) {
        // A dead challenge means starting over with the password.
        if (err.code === 'invalid_second_factor' && /challenge/.test(err.message)) { clear(root, h('div', { class: 'center' }, form)); clear(msg, errorBox(err)); user.focus(); return; }
        clear(msg2, errorBox(err));
        code.select();
      } finally {
        go.disabled = false;
      }
    });
    clear(root, h('div', { class: 'center' }, f2));
    code.focus();
  }
}
