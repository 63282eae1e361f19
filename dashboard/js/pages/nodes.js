// Nodes: the list (GET /api/v1/nodes) with each node's status and live CPU
// and memory, and the add-node form (POST /api/v1/nodes). The core decides
// everything: it connects once to verify the login and pins the host key it
// saw (or refuses one that differs from the fingerprint given); when asked
// to generate a key it returns the public key, shown here to be installed.
// /nodes/<id> is the node's own page (node.js).
import { api } from '../api.js';
import { h, clear, errorBox, badge, gauge, fmtBytes, fmtTime, fmtPct, copyText } from '../ui.js';
import { onEvent, subscribe, liveState } from '../live.js';
import { toPoint, liveNodePoint, memPct } from '../metrics.js';
import * as nodeDetail from './node.js';

export function statusBadge(status) {
  if (status === 'online') return badge('online', 'ok');
  if (status === 'hostkey_mismatch') return badge('host key mismatch', 'err');
  return badge(status || 'unknown', status === 'offline' ? 'warn' : 'neutral');
}

// The node's Docker engine, apart from SSH (status) and the collector: the
// core's check says whether it answers and, when not, why in words.
export function dockerBadge(n) {
  if (n.docker_status === 'reachable') return badge('reachable', 'ok');
  if (n.docker_status === 'unreachable') return badge('unreachable', 'warn');
  return badge('not checked', 'neutral');
}

// The collector's presence, apart from SSH reachability (status).
export function agentBadge(n) {
  if (n.agent_status === 'online') return badge('reporting', 'ok');
  if (n.agent_status === 'offline') return badge('silent', 'warn');
  return badge('none', 'neutral');
}

export function render(root, ctx) {
  const m = location.pathname.match(/\/nodes\/([^/]+)$/);
  if (m) return nodeDetail.render(root, ctx, decodeURIComponent(m[1]));
  return renderList(root, ctx);
}

// "env=prod, role=web" → {env: "prod", role: "web"}; throws on a bad pair.
function parseLabels(text) {
  const out = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`labels are key=value pairs separated by commas ('${part}' has no key=value)`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

function renderList(root, ctx) {
  const canWrite = !ctx.readOnly && ctx.can('nodes:write');
  const canMetrics = ctx.can('metrics:read');
  const err = h('div');
  const count = h('p', { class: 'muted small', id: 'node-count' }, '\u00a0');
  const tbody = h('tbody', { id: 'node-rows' });
  const formCard = canWrite ? addNodeForm(ctx, () => load()) : null;
  clear(root,
    h('div', { class: 'row between wrap' }, h('h1', {}, 'Nodes'),
      canWrite ? h('a', { class: 'btn btn-primary', href: '#add-node', onclick: (e) => { e.preventDefault(); formCard.querySelector('input')?.focus(); formCard.scrollIntoView({ block: 'start' }); } }, 'Add node') : null),
    err,
    h('section', { class: 'card' }, count, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'hide-sm' }, 'Address'), h('th', {}, 'SSH'), h('th', {}, 'Docker'),
        canMetrics && h('th', {}, 'CPU'), canMetrics && h('th', {}, 'Memory'), h('th', { class: 'hide-sm' }, 'Collector'), h('th', { class: 'hide-sm' }, 'Labels'))),
      tbody))),
    formCard);
  // /nodes?docker=local#add-node (from the empty containers page): the form
  // preset to this server's engine.
  if (formCard && new URLSearchParams(location.search).get('docker') === 'local') {
    formCard.querySelector('#n-docker').value = 'local';
    setTimeout(() => { formCard.scrollIntoView({ block: 'start' }); formCard.querySelector('#n-name')?.focus(); }, 0);
  }

  // Per node: the row's live cells, kept across reloads so a reload never
  // blanks the figures.
  const gauges = new Map();
  const latest = new Map();
  const known = new Map(); // id → the node as last listed (its collector's status)
  let busy = false, again = false;

  function gaugesFor(id) {
    let g = gauges.get(id);
    if (!g) {
      g = { cpu: gauge(`cpu-${id}`, 'CPU usage'), mem: gauge(`mem-${id}`, 'Memory usage') };
      gauges.set(id, g);
    }
    return g;
  }

  // A figure is old once its collector is silent or its sample is older
  // than three of the collector's intervals: then it is drawn faded, says
  // "old", and its title gives the sample's time.
  function isStale(id, p) {
    const n = known.get(id);
    const every = Math.max(Number(n?.agent_interval_ms) || 10000, 1000);
    return (n && n.agent_status && n.agent_status !== 'online') || Date.now() - p.t > Math.max(3 * every, 15000);
  }

  function show(id, p) {
    const prev = latest.get(id);
    if (prev && prev.t > p.t) return;
    latest.set(id, p);
    const g = gaugesFor(id);
    const stale = isStale(id, p);
    const old = (text) => (stale ? `${text} · old` : text);
    const when = stale ? ` (old: the last sample is from ${fmtTime(new Date(p.t).toISOString())})` : '';
    g.cpu.update(p.cpu_pct, p.cpu_pct === null ? '—' : old(fmtPct(p.cpu_pct)), p.cpu_pct === null ? '' : `CPU ${fmtPct(p.cpu_pct)}${when}`);
    const mp = memPct(p);
    g.mem.update(mp, mp === null ? '—' : old(`${fmtBytes(p.mem_used)} (${Math.round(mp)}%)`),
      mp === null ? '' : `${fmtBytes(p.mem_used)} of ${fmtBytes(p.mem_total)} in use${when}`);
    for (const x of [g.cpu.el, g.mem.el]) { x.classList.toggle('stale', stale); x.dataset.stale = String(stale); }
  }
  // Re-judged as time passes and when a node's collector status changes.
  const restale = () => { for (const [id, p] of [...latest]) { latest.delete(id); show(id, p); } };

  function row(n) {
    known.set(n.id, n);
    const g = gaugesFor(n.id);
    const labels = Object.entries(n.labels || {});
    return h('tr', { dataset: { node: n.name, status: n.status, id: n.id } },
      h('td', {}, h('a', { href: `${ctx.guest ? ctx.guest.base : ''}/nodes/${encodeURIComponent(n.id)}`, 'data-nav': '', class: 'link strong' }, n.name)),
      h('td', { class: 'hide-sm nowrap muted' }, n.host ? `${n.ssh_user}@${n.host}:${n.port}` : '—'), // guests see no SSH address
      h('td', { class: 'status-cell', title: n.status_reason || '' }, statusBadge(n.status)),
      h('td', { class: 'docker-cell', id: `docker-${n.id}`, title: n.docker_reason || '', dataset: { docker: n.docker_status || 'none' } },
        dockerBadge(n), n.docker_status === 'unreachable' && n.docker_reason
          ? h('div', { class: 'muted small hide-sm', id: `docker-reason-${n.id}` }, n.docker_reason) : null),
      canMetrics && h('td', { class: 'gauge-cell' }, g.cpu.el),
      canMetrics && h('td', { class: 'gauge-cell' }, g.mem.el),
      h('td', { class: 'hide-sm agent-cell', id: `agent-${n.id}`, dataset: { agent: n.agent_status || 'none' },
        title: n.agent_status ? `since ${fmtTime(n.agent_status_changed_at)}` : 'no collector has reported for this node' }, agentBadge(n)),
      h('td', { class: 'hide-sm' }, labels.length ? labels.map(([k, v]) => badge(`${k}=${v}`, 'neutral')) : h('span', { class: 'muted' }, '—')));
  }

  async function load() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const r = await api('GET', '/api/v1/nodes');
      const nodes = r.items || [];
      count.textContent = `${nodes.length} node${nodes.length === 1 ? '' : 's'}`;
      clear(tbody, nodes.length ? nodes.map(row)
        : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, canWrite ? 'No nodes yet: add one below.' : 'No nodes.')));
      clear(err);
      restale();
      if (canMetrics) for (const n of nodes) if (!latest.has(n.id)) loadLatest(n.id);
    } catch (e) {
      clear(err, errorBox(e));
    } finally {
      busy = false;
      if (again) { again = false; load(); }
    }
  }

  // The figures before the first live sample: the series' `latest`.
  const asked = new Set();
  async function loadLatest(id) {
    if (asked.has(id)) return;
    asked.add(id);
    try {
      const now = Date.now();
      const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(id)}/metrics?from=${now - 120000}&to=${now}`);
      const p = toPoint(r.latest) || toPoint((r.points || []).at(-1));
      if (p) show(id, p);
    } catch { /* no collector on that node (yet): the cells stay "—" */ }
  }

  load();
  let t = null;
  const soon = () => { clearTimeout(t); t = setTimeout(load, 150); };
  const offEvents = onEvent((e) => {
    const type = typeof e.type === 'string' ? e.type : '';
    if (type.startsWith('node.') || (type.startsWith('agent.') && e.stream?.startsWith('node/'))) soon();
  });
  const offMetrics = canMetrics ? subscribe('metrics', (body) => {
    const lp = liveNodePoint(body);
    if (lp) show(lp.nodeId, lp.point);
  }) : () => {};
  // A safety net while the stream is not live.
  const timer = setInterval(() => { if (liveState() !== 'live') load(); }, 10000);
  const staleTimer = setInterval(restale, 5000);
  return () => { clearInterval(timer); clearInterval(staleTimer); clearTimeout(t); offEvents(); offMetrics(); };
}

// ---- the add-node form ------------------------------------------------------------

function radio(name, value, label, checked) {
  const id = `${name}-${value}`;
  return h('label', { class: 'check', for: id }, h('input', { type: 'radio', name, value, id, checked }), label);
}

function addNodeForm(ctx, onAdded) {
  const f = {
    name: h('input', { id: 'n-name', name: 'name', required: true, autocomplete: 'off', placeholder: 'web-1', maxlength: 63 }),
    host: h('input', { id: 'n-host', name: 'host', required: true, autocomplete: 'off', placeholder: '203.0.113.10 or host.example' }),
    port: h('input', { id: 'n-port', name: 'port', type: 'number', min: 1, max: 65535, value: '22', inputmode: 'numeric' }),
    user: h('input', { id: 'n-user', name: 'ssh_user', required: true, value: 'root', autocomplete: 'off' }),
    docker: h('select', { id: 'n-docker', name: 'docker' }, h('option', { value: 'ssh' }, 'over SSH (docker on the node)'), h('option', { value: 'local' }, 'local socket (this machine)')),
    labels: h('input', { id: 'n-labels', name: 'labels', autocomplete: 'off', placeholder: 'env=prod, role=web' }),
    key: h('textarea', { id: 'n-key', name: 'private_key', rows: 5, spellcheck: 'false', autocomplete: 'off', placeholder: '-----BEGIN OPENSSH PRIVATE KEY-----' }),
    pass: h('input', { id: 'n-pass', name: 'passphrase', type: 'password', autocomplete: 'off' }),
    fp: h('input', { id: 'n-fp', name: 'host_key_fingerprint', autocomplete: 'off', placeholder: 'SHA256:…', spellcheck: 'false' }),
  };
  const keyPaste = h('div', { class: 'stack', id: 'key-paste' },
    h('div', {}, h('label', { for: 'n-key' }, 'Private key (OpenSSH or PEM; ed25519 or ECDSA)'), f.key),
    h('div', {}, h('label', { for: 'n-pass' }, 'Passphrase (if the key has one)'), f.pass));
  const keyGen = h('p', { class: 'muted small', id: 'key-generate', hidden: true },
    'The core makes an ed25519 key, keeps the private half sealed, and shows you the public key to put in the node\'s authorized_keys. ' +
    'The node stays offline until the key is installed.');
  const fpBox = h('div', { id: 'fp-box', hidden: true }, h('label', { for: 'n-fp' }, 'Expected host key fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the node)'), f.fp);
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', id: 'n-submit' }, 'Add node');
  const progress = h('p', { class: 'muted small', id: 'n-progress', role: 'status', 'aria-live': 'polite' }, '\u00a0');
  const msg = h('div', { id: 'n-error' });
  const result = h('div', { id: 'node-added' });

  const form = h('form', { class: 'stack', 'aria-labelledby': 'add-node-title', novalidate: true },
    h('div', { class: 'inline-form' },
      h('div', { class: 'field' }, h('label', { for: 'n-name' }, 'Name'), f.name),
      h('div', { class: 'field grow' }, h('label', { for: 'n-host' }, 'Host'), f.host),
      h('div', { class: 'field narrow' }, h('label', { for: 'n-port' }, 'SSH port'), f.port),
      h('div', { class: 'field' }, h('label', { for: 'n-user' }, 'SSH user'), f.user)),
    h('div', { class: 'inline-form' },
      h('div', { class: 'field grow' }, h('label', { for: 'n-labels' }, 'Labels'), f.labels),
      h('div', { class: 'field' }, h('label', { for: 'n-docker' }, 'Docker engine'), f.docker)),
    h('fieldset', {}, h('legend', {}, 'SSH key'),
      h('div', { class: 'row wrap' }, radio('n-keymode', 'paste', 'Paste a private key', true), radio('n-keymode', 'generate', 'Generate a key on the core', false)),
      keyPaste, keyGen),
    h('fieldset', {}, h('legend', {}, 'Host key'),
      h('div', { class: 'row wrap' },
        radio('n-fpmode', 'tofu', 'Pin the key the node presents now', true),
        radio('n-fpmode', 'given', 'Pin a fingerprint I verified', false)),
      fpBox),
    msg,
    h('div', { class: 'row' }, submit, progress));

  const mode = (name) => form.querySelector(`input[name="${name}"]:checked`).value;
  form.addEventListener('change', (e) => {
    if (e.target.name === 'n-keymode') { keyPaste.hidden = mode('n-keymode') !== 'paste'; keyGen.hidden = !keyPaste.hidden; }
    if (e.target.name === 'n-fpmode') fpBox.hidden = mode('n-fpmode') !== 'given';
  });

  const fieldInput = { name: f.name, host: f.host, port: f.port, ssh_user: f.user, private_key: f.key, passphrase: f.pass, host_key_fingerprint: f.fp, labels: f.labels, docker: f.docker };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const el of Object.values(f)) el.removeAttribute('aria-invalid');
    clear(msg);
    const body = { name: f.name.value.trim(), host: f.host.value.trim(), ssh_user: f.user.value.trim(), docker: f.docker.value };
    const port = f.port.value.trim();
    // Sent as typed: the core validates and names the field it refuses.
    if (port) body.port = /^\d+$/.test(port) ? Number(port) : port;
    try {
      if (f.labels.value.trim()) body.labels = parseLabels(f.labels.value);
    } catch (x) {
      f.labels.setAttribute('aria-invalid', 'true');
      clear(msg, errorBox(x));
      f.labels.focus();
      return;
    }
    const generate = mode('n-keymode') === 'generate';
    if (generate) body.generate_key = true;
    else {
      if (f.key.value.trim()) body.private_key = f.key.value.endsWith('\n') ? f.key.value : `${f.key.value}\n`;
      if (f.pass.value) body.passphrase = f.pass.value;
    }
    if (mode('n-fpmode') === 'given') body.host_key_fingerprint = f.fp.value.trim();
    submit.disabled = true;
    submit.textContent = 'Connecting…';
    progress.textContent = `Connecting to ${body.host || 'the host'}${body.port ? `:${body.port}` : ''} to ${generate ? 'learn its host key' : 'verify the host key and the login'} (up to 3 s)…`;
    try {
      const n = await api('POST', '/api/v1/nodes', body);
      // A fresh form for the next node; the key is not kept anywhere.
      form.reset();
      keyPaste.hidden = false; keyGen.hidden = true; fpBox.hidden = true;
      progress.textContent = `${n.name} added.`;
      clear(result, addedPanel(n, body));
      result.querySelector('h3')?.focus();
      onAdded(n);
    } catch (x) {
      progress.textContent = '\u00a0';
      const mismatch = /host key mismatch/i.test(x.message || '') || x.code === 'hostkey_mismatch';
      clear(msg, mismatch
        ? h('div', { class: 'alert alert-error', role: 'alert', id: 'hostkey-error' },
          h('p', {}, h('strong', {}, 'Host key mismatch: the node was not added.')),
          h('p', {}, x.message),
          h('p', { class: 'small' }, 'Either the fingerprint was copied wrong or something else answers at that address. Check it on the node itself before pinning another one.'))
        : errorBox(x));
      const input = x.field && fieldInput[x.field];
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    } finally {
      submit.disabled = false;
      submit.textContent = 'Add node';
    }
  });

  return h('section', { class: 'card', id: 'add-node' },
    h('h2', { id: 'add-node-title' }, 'Add a node'),
    h('p', { class: 'muted small' }, 'The core connects once over SSH before saving the node. Private keys are sealed with the master key and never shown again.'),
    form, result);
}

// What the operator must know right after adding a node: the pinned host
// key and, for a generated key, the public key to install (with a check).
export function publicKeyPanel(n, { onChecked } = {}) {
  const checkOut = h('p', { class: 'small', id: 'node-check-result', role: 'status', 'aria-live': 'polite' }, '\u00a0');
  const copy = h('button', { class: 'btn btn-small', type: 'button', onclick: () => copyText(n.public_key, copy) }, 'Copy');
  const check = h('button', { class: 'btn btn-small btn-primary', type: 'button', onclick: async () => {
    check.disabled = true;
    checkOut.textContent = 'Connecting…';
    try {
      const c = await api('POST', `/api/v1/nodes/${encodeURIComponent(n.id)}/check`);
      checkOut.replaceChildren(statusBadge(c.status), c.status === 'online' ? ` ${c.uname || ''}` : ` ${c.reason || ''}`);
      if (onChecked) onChecked(c);
    } catch (x) {
      checkOut.replaceChildren(errorBox(x));
    } finally { check.disabled = false; }
  } }, 'Check connection');
  return h('div', { class: 'pubkey', id: 'pubkey-panel' },
    h('p', {}, `Install this public key for ${n.ssh_user} on ${n.host}, then check the connection:`),
    h('pre', { class: 'secret wrap', id: 'node-public-key', tabindex: '0' }, n.public_key),
    h('p', { class: 'muted small' }, 'For example, on the node: ', h('code', {}, `echo '…' >> ~${n.ssh_user}/.ssh/authorized_keys`)),
    h('div', { class: 'row' }, copy, check), checkOut);
}

function addedPanel(n, sent) {
  // The status shown is the core's: the node's row at registration, then
  // the result of each check asked from this panel (the same answer the
  // check result line shows), never one of them stale beside the other.
  const statusDd = h('dd', { id: 'node-added-status', dataset: { status: n.status } }, statusBadge(n.status),
    n.status_reason ? h('span', { class: 'muted small' }, ` ${n.status_reason}`) : null);
  const onChecked = (c) => {
    statusDd.dataset.status = c.status;
    statusDd.replaceChildren(statusBadge(c.status), c.status !== 'online' && c.reason ? h('span', { class: 'muted small' }, ` ${c.reason}`) : '');
  };
  return h('div', { class: 'alert alert-ok', role: 'status' },
    h('h3', { tabindex: '-1' }, `Node ${n.name} added`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'SSH'), statusDd,
      h('dt', {}, 'Pinned host key'), h('dd', {}, h('code', { id: 'node-added-fp' }, n.host_key_fingerprint)),
      h('dt', {}, 'Pinned because'), h('dd', { class: 'muted' }, sent.host_key_fingerprint ? 'it matched the fingerprint you gave' : 'the node presented it now (check it against the node if you can)'),
      n.key_type ? [h('dt', {}, 'Key type'), h('dd', {}, n.key_type)] : null,
      h('dt', {}, 'Added'), h('dd', {}, fmtTime(n.created_at))),
    n.public_key ? publicKeyPanel(n, { onChecked }) : null,
    h('p', {}, h('a', { href: `/nodes/${encodeURIComponent(n.id)}`, 'data-nav': '', class: 'link' }, `Open ${n.name} →`)));
}
