// Settings: notification channels (with a test button), alert rules and
// silences (alerts:read to see, alerts:write to change), and where the
// user's own password is (the Account page). Reads and sends intent only:
// validation and every error message come from the core (422 names the field).
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, badge, confirmDialog, toast } from '../ui.js';
import { onEvent } from '../live.js';

const CHANNEL_KINDS = ['webhook', 'slack', 'discord', 'ntfy', 'gotify', 'email'];
const RULE_KINDS = ['metric', 'node_offline', 'node_hostkey_mismatch', 'collector_silent', 'container_died', 'container_oom',
  'container_unhealthy', 'container_restart_loop', 'stack_deploy_failed', 'stack_rolled_back', 'audit_chain_broken', 'backup_failed'];
const METRICS = ['node.cpu', 'node.memory', 'node.disk', 'container.cpu', 'container.memory'];

function field(id, label, input, hint) {
  return h('div', { class: 'field', id: `${id}-field` }, h('label', { for: id }, label), input, hint ? h('span', { class: 'muted small' }, hint) : null);
}
const input = (id, attrs = {}) => h('input', { id, autocomplete: 'off', ...attrs });
const select = (id, values, selected) => h('select', { id }, values.map((v) => h('option', { value: v, selected: v === selected }, v)));

function ruleText(r) {
  const p = r.params || {};
  if (r.kind === 'metric') return `${p.metric} ${p.op} ${p.threshold} %${p.for_s ? ` for ${p.for_s} s` : ''}`;
  if (r.kind === 'container_restart_loop') return `${p.count} deaths in ${p.window_s} s`;
  return r.kind.replaceAll('_', ' ');
}

export function render(root, ctx) {
  const canRead = ctx.can('alerts:read');
  const canWrite = ctx.can('alerts:write');
  const sections = [];
  const cleanups = [];
  if (canRead) sections.push(channelsSection(canWrite), rulesSection(canWrite), silencesSection(canWrite), windowsSection(canWrite));
  sections.push(accountSection());
  clear(root, h('h1', {}, 'Settings'), sections.map((s) => s.el));
  for (const s of sections) if (s.load) s.load();
  if (canRead) {
    let t = null;
    cleanups.push(onEvent((e) => {
      if (typeof e.type !== 'string' || !/^alert_(rule|channel|silence)\./.test(e.type)) return;
      clearTimeout(t);
      t = setTimeout(() => { for (const s of sections) if (s.load) s.load(); }, 200);
    }));
  }
  return () => cleanups.forEach((f) => f());
}

function channelsSection(canWrite) {
  const err = h('div');
  const formErr = h('div');
  const tbody = h('tbody', { id: 'channel-rows' });
  const name = input('ch-name', { maxlength: 100, required: true });
  const kind = select('ch-kind', CHANNEL_KINDS, 'webhook');
  const url = input('ch-url', { maxlength: 2000, placeholder: 'https://…', required: true });
  const secret = input('ch-secret', { type: 'password', minlength: 16, placeholder: 'at least 16 characters' });
  const token = input('ch-token', { type: 'password' });
  const from = input('ch-from', { placeholder: 'alerts@example.com' });
  const to = input('ch-to', { placeholder: 'ops@example.com, …' });
  const user = input('ch-username');
  const pass = input('ch-password', { type: 'password' });
  const fields = {
    secret: field('ch-secret', 'Signing secret', secret, 'signs each delivery (HMAC-SHA256)'),
    token: field('ch-token', 'Access token', token, 'ntfy: optional; Gotify: the application token'),
    from: field('ch-from', 'From', from),
    to: field('ch-to', 'To', to),
    username: field('ch-username', 'SMTP user', user),
    password: field('ch-password', 'SMTP password', pass),
  };
  const shows = { webhook: ['secret'], ntfy: ['token'], gotify: ['token'], email: ['from', 'to', 'username', 'password'], slack: [], discord: [] };
  const sync = () => {
    for (const [k, el] of Object.entries(fields)) el.hidden = !shows[kind.value].includes(k);
    url.placeholder = kind.value === 'email' ? 'smtp://mail.example.com:587' : 'https://…';
  };
  kind.addEventListener('change', sync);
  sync();
  const form = h('form', { class: 'inline-form', id: 'channel-form' },
    field('ch-name', 'Name', name), field('ch-kind', 'Kind', kind), field('ch-url', 'URL', url),
    Object.values(fields),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Add channel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), kind: kind.value, url: url.value.trim() };
    if (kind.value === 'webhook') body.secret = secret.value;
    if ((kind.value === 'ntfy' || kind.value === 'gotify') && token.value) body.token = token.value;
    if (kind.value === 'email') {
      body.from = from.value.trim();
      body.to = to.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (user.value) body.username = user.value;
      if (pass.value) body.password = pass.value;
    }
    try {
      await api('POST', '/api/v1/alerts/channels', body);
      toast(`Channel ${body.name} added`);
      form.reset();
      sync();
      clear(formErr);
      load();
    } catch (e2) { clear(formErr, errorBox(e2)); }
  });

  async function load() {
    try {
      const r = await api('GET', '/api/v1/alerts/channels');
      clear(tbody, r.channels.length ? r.channels.map((c) => h('tr', { dataset: { channel: c.name } },
        h('td', {}, c.name), h('td', {}, c.kind), h('td', {}, h('code', {}, c.url)),
        h('td', {}, c.enabled ? badge('enabled', 'ok') : badge('disabled', 'neutral')),
        h('td', { class: 'actions' },
          canWrite && h('button', { class: 'btn btn-small', type: 'button', onclick: (ev) => sendTest(c, ev.currentTarget) }, 'Send test'),
          canWrite && h('button', { class: 'btn btn-small btn-danger', type: 'button', onclick: async () => {
            if (!(await confirmDialog(`Delete ${c.name}?`, 'Rules that name it stop notifying it.', 'Delete'))) return;
            try { await api('DELETE', `/api/v1/alerts/channels/${c.id}`); toast(`${c.name} deleted`); } catch (e) { clear(err, errorBox(e)); }
            load();
          } }, 'Delete')))) : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No channels yet: alerts are recorded but nobody is told.')));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  async function sendTest(c, button) {
    button.disabled = true;
    try {
      const { job } = await api('POST', `/api/v1/alerts/channels/${c.id}/test`);
      // The outcome is the job's; poll it briefly and show the receiver's answer.
      let j = job;
      for (let i = 0; i < 40 && !['succeeded', 'failed', 'cancelled'].includes(j.state); i++) {
        await new Promise((r) => setTimeout(r, 500));
        j = (await api('GET', `/api/v1/jobs/${job.id}`)).job;
      }
      if (j.state === 'succeeded') toast(`Test sent to ${c.name}: ${j.result?.status ?? ''} ${j.result?.answer ?? ''}`.trim());
      else if (j.state === 'failed') toast(`Test to ${c.name} failed: ${j.error?.message || j.error || 'no answer'}`, 'err');
      else toast(`Test to ${c.name} is still being retried (job ${j.id})`, 'warn');
      const row = document.querySelector(`#channel-rows tr[data-channel="${CSS.escape(c.name)}"]`);
      if (row) row.dataset.test = j.state;
    } catch (e) {
      toast(e.message, 'err');
    } finally { button.disabled = false; }
  }

  return {
    load,
    el: h('section', { class: 'card', id: 'channels' }, h('h2', {}, 'Notification channels'), err,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'Target'), h('th', {}, 'Status'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
      canWrite && h('h3', {}, 'New channel'), canWrite && formErr, canWrite && form),
  };
}

function rulesSection(canWrite) {
  const err = h('div');
  const formErr = h('div');
  const tbody = h('tbody', { id: 'rule-rows' });
  const name = input('rule-name', { maxlength: 100, required: true });
  const kind = select('rule-kind', RULE_KINDS, 'metric');
  const metric = select('rule-metric', METRICS, 'node.cpu');
  const op = select('rule-op', ['>', '>=', '<', '<='], '>');
  const threshold = input('rule-threshold', { type: 'number', step: 'any', value: '90' });
  const forS = input('rule-for', { type: 'number', value: '300' });
  const severity = select('rule-severity', ['info', 'warning', 'critical'], 'warning');
  const repeat = input('rule-repeat', { type: 'number', value: '0', min: '0' });
  const metricFields = [field('rule-metric', 'Metric', metric), field('rule-op', 'Op', op),
    field('rule-threshold', 'Threshold %', threshold), field('rule-for', 'For (s)', forS)];
  const sync = () => { for (const f of metricFields) f.hidden = kind.value !== 'metric'; };
  kind.addEventListener('change', sync);
  sync();
  const form = h('form', { class: 'inline-form', id: 'rule-form' },
    field('rule-name', 'Name', name), field('rule-kind', 'Kind', kind), metricFields,
    field('rule-severity', 'Severity', severity), field('rule-repeat', 'Repeat (s)', repeat, '0 = never'),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Add rule')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), kind: kind.value, severity: severity.value, repeat_s: Number(repeat.value || 0) };
    if (kind.value === 'metric') Object.assign(body, { metric: metric.value, op: op.value, threshold: Number(threshold.value), for_s: Number(forS.value || 0) });
    try {
      await api('POST', '/api/v1/alerts/rules', body);
      toast(`Rule ${body.name} added`);
      form.reset();
      sync();
      clear(formErr);
      load();
    } catch (e2) { clear(formErr, errorBox(e2)); }
  });

  async function load() {
    try {
      const r = await api('GET', '/api/v1/alerts/rules');
      clear(tbody, r.rules.map((x) => h('tr', { dataset: { rule: x.name, enabled: String(x.enabled) } },
        h('td', {}, x.name, x.builtin ? h('span', { class: 'muted small' }, ' (default)') : null),
        h('td', {}, ruleText(x)),
        h('td', {}, badge(x.severity, x.severity === 'critical' ? 'err' : x.severity === 'warning' ? 'warn' : 'neutral')),
        h('td', {}, x.node_labels ? Object.entries(x.node_labels).map(([k, v]) => `${k}=${v}`).join(', ') : 'all nodes'),
        h('td', { class: 'actions' }, canWrite && [
          h('button', { class: 'btn btn-small', type: 'button', onclick: async () => {
            try { await api('PATCH', `/api/v1/alerts/rules/${x.id}`, { enabled: !x.enabled }); } catch (e) { clear(err, errorBox(e)); }
            load();
          } }, x.enabled ? 'Disable' : 'Enable'),
          h('button', { class: 'btn btn-small btn-danger', type: 'button', onclick: async () => {
            if (!(await confirmDialog(`Delete ${x.name}?`, 'Its open alerts resolve.', 'Delete'))) return;
            try { await api('DELETE', `/api/v1/alerts/rules/${x.id}`); } catch (e) { clear(err, errorBox(e)); }
            load();
          } }, 'Delete')]))));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }
  return {
    load,
    el: h('section', { class: 'card', id: 'rules' }, h('h2', {}, 'Alert rules'), err,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Condition'), h('th', {}, 'Severity'), h('th', {}, 'Nodes'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
      canWrite && h('h3', {}, 'New rule'), canWrite && formErr, canWrite && form),
  };
}

// What the silences and the maintenance windows (recurring silences) share:
// adding one from a form, the button that ends one, and the list of the
// active ones a section shows (pick: which of them; row: a silence's <tr>).
async function addSilence(body, done, form, formErr, load) {
  try {
    await api('POST', '/api/v1/alerts/silences', body);
    toast(done);
    form.reset();
    clear(formErr);
    load();
  } catch (e) { clear(formErr, errorBox(e)); }
}
const silenceEndButton = (s, label, err, load) => h('button', { class: 'btn btn-small', type: 'button', onclick: async () => {
  try { await api('DELETE', `/api/v1/alerts/silences/${s.id}`); } catch (e) { clear(err, errorBox(e)); }
  load();
} }, label);
function silenceLoader(tbody, err, pick, row, cols, emptyText) {
  return async function load() {
    try {
      const r = await api('GET', '/api/v1/alerts/silences?state=active');
      const list = r.silences.filter(pick);
      clear(tbody, list.length ? list.map(row) : h('tr', {}, h('td', { colspan: cols, class: 'muted' }, emptyText)));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  };
}

function silencesSection(canWrite) {
  const err = h('div');
  const formErr = h('div');
  const tbody = h('tbody', { id: 'silence-rows' });
  const mField = select('sil-field', ['node_name', 'container_name', 'kind', 'rule_name', 'severity', 'target'], 'node_name');
  const mValue = input('sil-value', { maxlength: 200, placeholder: 'web-* matches a prefix' });
  const hours = input('sil-hours', { type: 'number', value: '1', min: '0.1', step: '0.1' });
  const comment = input('sil-comment', { maxlength: 500 });
  const form = h('form', { class: 'inline-form', id: 'silence-form' },
    field('sil-field', 'Match', mField), field('sil-value', 'Value', mValue), field('sil-hours', 'For (hours)', hours),
    field('sil-comment', 'Comment', comment),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Add silence')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { matchers: mValue.value.trim() ? { [mField.value]: mValue.value.trim() } : {},
      duration_s: Math.round(Number(hours.value) * 3600), comment: comment.value };
    addSilence(body, 'Silence added', form, formErr, load);
  });
  const load = silenceLoader(tbody, err, (s) => !s.recurrence, (s) => h('tr', { dataset: { silence: s.id } },
    h('td', {}, Object.entries(s.matchers || {}).map(([k, v]) => `${k}=${v}`).join(', ') || 'everything'),
    h('td', { class: 'nowrap' }, fmtTime(s.until)), h('td', {}, s.comment || '—'), h('td', {}, s.created_by || '—'),
    h('td', { class: 'actions' }, canWrite && silenceEndButton(s, 'End now', err, load))), 5, 'No active silences.');
  return {
    load,
    el: h('section', { class: 'card', id: 'silences' }, h('h2', {}, 'Silences'), err,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Matches'), h('th', {}, 'Until'), h('th', {}, 'Comment'), h('th', {}, 'By'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
      canWrite && h('h3', {}, 'New silence'), canWrite && formErr, canWrite && form),
  };
}

const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const labelText = (l) => Object.entries(l || {}).map(([k, v]) => `${k}=${v}`).join(', ');

// Recurring maintenance windows: silences with node_labels and a weekly recurrence (UTC).
function windowsSection(canWrite) {
  const err = h('div');
  const formErr = h('div');
  const tbody = h('tbody', { id: 'window-rows' });
  const labels = input('win-labels', { maxlength: 500, placeholder: 'env=prod, role=db', required: true });
  const days = WEEK.map((d) => h('input', { type: 'checkbox', id: `win-day-${d}`, value: d }));
  const dayBox = h('fieldset', { class: 'checks', id: 'win-days' }, h('legend', {}, 'Days'),
    WEEK.map((d, i) => h('label', { for: `win-day-${d}` }, days[i], ` ${d}`)));
  const start = input('win-start', { type: 'time', value: '02:00', required: true });
  const hours = input('win-hours', { type: 'number', value: '2', min: '0.1', max: '168', step: '0.1' });
  const comment = input('win-comment', { maxlength: 500 });
  const form = h('form', { class: 'inline-form', id: 'window-form' },
    field('win-labels', 'Nodes with labels', labels), dayBox, field('win-start', 'Start (UTC)', start),
    field('win-hours', 'Length (hours)', hours), field('win-comment', 'Comment', comment),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Add window')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const sel = {};
    for (const part of labels.value.split(',').map((x) => x.trim()).filter(Boolean)) {
      const i = part.indexOf('=');
      if (i > 0) sel[part.slice(0, i).trim()] = part.slice(i + 1).trim();
      else sel[part] = '';
    }
    const body = {
      node_labels: sel,
      recurrence: { days: days.filter((d) => d.checked).map((d) => d.value), start: start.value, duration_s: Math.round(Number(hours.value) * 3600) },
      comment: comment.value,
    };
    addSilence(body, 'Maintenance window added', form, formErr, load);
  });
  const load = silenceLoader(tbody, err, (s) => s.recurrence, (s) => h('tr', { dataset: { window: s.id } },
    h('td', {}, labelText(s.node_labels)), h('td', {}, s.recurrence.days.join(', ')),
    h('td', { class: 'nowrap' }, `${s.recurrence.start} UTC`), h('td', {}, `${+(s.recurrence.duration_s / 3600).toFixed(2)} h`),
    h('td', {}, s.comment || '—'),
    h('td', { class: 'actions' }, canWrite && silenceEndButton(s, 'Delete', err, load))), 6, 'No maintenance windows.');
  return {
    load,
    el: h('section', { class: 'card', id: 'windows' }, h('h2', {}, 'Maintenance windows'),
      h('p', { class: 'muted' }, 'Every week, the alerts of these nodes are silenced while the window is open; an alert still firing when it closes notifies.'),
      err,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Nodes'), h('th', {}, 'Days'), h('th', {}, 'Start'), h('th', {}, 'Length'), h('th', {}, 'Comment'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
      canWrite && h('h3', {}, 'New window'), canWrite && formErr, canWrite && form),
  };
}

// The password (and the sessions) live on the Account page.
function accountSection() {
  return { el: h('section', { class: 'card', id: 'account' }, h('h2', {}, 'Your password and sessions'),
    h('p', { class: 'muted' }, 'Change your password and see or end your sessions on the ',
      h('a', { href: '/account', 'data-nav': '', id: 'account-link' }, 'Account page'), '.')) };
}
