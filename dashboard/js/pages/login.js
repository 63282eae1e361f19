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
      session.csrf = r.csrf_token;
      pass.value = '';
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
}
