// Account: the caller's own password and sessions. The sessions list, which
// one is this browser's ("current") and whether an end worked all come from
// the core; ending one here makes its next request fail wherever it is.
import { api, ApiError } from '../api.js';
import { h, clear, errorBox, fmtTime, toast } from '../ui.js';
import { badge, confirmDialog, reloadOnEvent, emptyState } from '../widgets.js';

// A short name for a User-Agent string (the whole string is the cell's title).
export function browserName(ua) {
  if (!ua) return 'unknown client';
  const b = ua.match(/(Edg|OPR|Firefox|Chromium|Chrome|Version)\/(\d+)/);
  const name = b ? ({ Edg: 'Edge', OPR: 'Opera', Version: /Safari/.test(ua) ? 'Safari' : 'Browser' }[b[1]] || b[1]) : null;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : null;
  if (!name) return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
  return `${name} ${b[2]}${os ? ` on ${os}` : ''}${/Headless/.test(ua) ? ' (headless)' : ''}`;
}

export function render(root, ctx) {
  const sessions = sessionsSection(ctx);
  const pw = passwordSection(() => sessions.live.reload());
  clear(root, h('h1', {}, 'Account'),
    h('p', { class: 'muted' }, `Signed in as ${ctx.me.name} (${ctx.me.role}).`),
    pw.el, sessions.el);
  sessions.live.reload();
  return () => sessions.live.off();
}

function field(id, label, input) {
  return h('div', { class: 'field', id: `${id}-field` }, h('label', { for: id }, label), input);
}

function passwordSection(onChanged) {
  const err = h('div');
  const cur = h('input', { id: 'pw-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Change password');
  const form = h('form', { class: 'inline-form', id: 'password-form' },
    field('pw-current', 'Current password', cur), field('pw-new', 'New password', next),
    h('div', { class: 'filter-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      await api('POST', '/api/v1/auth/password', { current_password: cur.value, new_password: next.value });
      form.reset();
      clear(err, h('div', { class: 'alert alert-ok', role: 'status', id: 'password-changed' }, 'Password changed. Your other sessions have ended.'));
      onChanged();
    } catch (e2) { clear(err, errorBox(e2)); } finally { submit.disabled = false; }
  });
  return { el: h('section', { class: 'card', id: 'password' }, h('h2', {}, 'Your password'),
    h('p', { class: 'muted small' }, 'Changing it ends every other session of yours.'), err, form) };
}

function sessionsSection(ctx) {
  const err = h('div', { id: 'sessions-error' });
  const tbody = h('tbody', { id: 'session-rows' });
  const endOthers = h('button', { class: 'btn btn-danger', id: 'end-other-sessions', type: 'button', disabled: true }, 'End all other sessions');
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Device'), h('th', {}, 'Address'), h('th', {}, 'Created'), h('th', {}, 'Last used'), h('th', {}, 'Status'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
    tbody));
  const body = h('div', {}, table);
  let others = 0;

  const endOne = async (s, btn) => {
    if (!(await confirmDialog('End this session?', `The session from ${browserName(s.user_agent)} at ${s.client_ip || 'an unknown address'} is logged out at once: its next request is refused.`, 'End session'))) return;
    btn.disabled = true;
    btn.textContent = 'Ending…';
    try {
      await api('DELETE', `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
      toast('Session ended');
      clear(err);
    } catch (e) {
      // Already ended elsewhere is what was wanted; anything else stays shown.
      if (!(e instanceof ApiError && e.status === 404)) clear(err, errorBox(e));
    }
    live.reload();
  };

  endOthers.addEventListener('click', async () => {
    if (!(await confirmDialog('End all other sessions?', `${others} other session${others === 1 ? '' : 's'} of yours (other browsers and devices) will be logged out at once. This one stays.`, 'End them'))) return;
    endOthers.disabled = true;
    try {
      const r = await api('DELETE', '/api/v1/auth/sessions');
      toast(`${r.ended.length} session${r.ended.length === 1 ? '' : 's'} ended`);
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
    live.reload();
  });

  const load = async () => {
    try {
      const r = await api('GET', '/api/v1/auth/sessions');
      others = r.sessions.filter((s) => !s.current).length;
      endOthers.disabled = others === 0;
      clear(tbody, r.sessions.map((s) => {
        const btn = h('button', { class: 'btn btn-small btn-danger', type: 'button' }, 'End');
        btn.addEventListener('click', () => endOne(s, btn));
        return h('tr', { dataset: { session: s.id, current: s.current ? '1' : '0' } },
          h('td', { title: s.user_agent || '' }, browserName(s.user_agent)),
          h('td', {}, h('code', {}, s.client_ip || '—')),
          h('td', { class: 'nowrap' }, fmtTime(s.created_at)),
          h('td', { class: 'nowrap' }, fmtTime(s.last_seen_at)),
          h('td', {}, s.current ? badge('this browser', 'accent') : badge('active', 'ok')),
          h('td', { class: 'actions' }, s.current ? null : btn));
      }));
      if (!r.sessions.length) clear(body, emptyState('sessions-empty', 'No sessions', 'You are signed in with an API token, which has no sessions to manage.'));
      else if (!table.isConnected) clear(body, table);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'session_required') clear(body, emptyState('sessions-empty', 'No sessions here', e.message));
      else clear(err, errorBox(e));
    }
  };
  // Logins, logouts and ends of this user's sessions (from any tab or device).
  const live = reloadOnEvent(load, (e) => ['auth.login', 'auth.logout', 'auth.session_ended', 'user.password_changed'].includes(e.type)
    && (e.stream === `user/${ctx.me.user_id || ctx.me.id}`));
  return { live, el: h('section', { class: 'card', id: 'sessions' },
    h('div', { class: 'row between wrap' }, h('h2', {}, 'Your sessions'), endOthers),
    h('p', { class: 'muted small' }, 'Every browser or device signed in as you. Ending one logs it out at once.'), err, body) };
}
