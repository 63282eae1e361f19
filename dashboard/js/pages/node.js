// One node: its details and status (GET /api/v1/nodes/{id}), the host-key
// and generated-key situations an operator must act on, live charts of CPU,
// memory, disk and network (GET /api/v1/nodes/{id}/metrics for the range,
// then the live topic metrics/node/<id>), the containers on the node, and
// its tools (node-tools.js: run a command, labels, collector enrollment).
import { api } from '../api.js';
import { h, clear, errorBox, badge, fmtTime, fmtBytes, fmtRate, fmtPct, confirmDialog, toast, copyText } from '../ui.js';
import { onEvent, subscribe } from '../live.js';
import { toPoint, liveNodePoint, memPct, diskPct } from '../metrics.js';
import { statusBadge, agentBadge, dockerBadge, publicKeyPanel } from './nodes.js';
import { nodeTools } from './node-tools.js';
import { loadUplot, axisFmt, COLORS } from '../charts.js';

// Ranges: seconds back, seconds per point (the core raises the step when
// more than 2000 points would come back; 60 s and more read roll-ups).
const RANGES = [
  { key: '1h', label: '1 h', span: 3600, step: 10 },
  { key: '24h', label: '24 h', span: 86400, step: 120 },
  { key: '7d', label: '7 d', span: 7 * 86400, step: 900 },
];

// Chart definitions: series read from a point.
const CHARTS = [
  { key: 'cpu', title: 'CPU', unit: 'pct', series: [{ label: 'CPU', get: (p) => p.cpu_pct, color: COLORS.a }],
    now: (p) => fmtPct(p.cpu_pct) },
  { key: 'mem', title: 'Memory', unit: 'bytes', series: [{ label: 'Used', get: (p) => p.mem_used, color: COLORS.a }],
    now: (p) => (p.mem_used === null ? '—' : `${fmtBytes(p.mem_used)} of ${fmtBytes(p.mem_total)} (${fmtPct(memPct(p))})`) },
  { key: 'disk', title: 'Disk I/O', unit: 'rate', series: [
    { label: 'Read', get: (p) => p.disk_read_bps, color: COLORS.a },
    { label: 'Write', get: (p) => p.disk_write_bps, color: COLORS.b }],
    now: (p) => `${p.disk_used === null ? '' : `${fmtBytes(p.disk_used)} of ${fmtBytes(p.disk_total)} used · `}r ${fmtRate(p.disk_read_bps)} · w ${fmtRate(p.disk_write_bps)}` },
  { key: 'net', title: 'Network', unit: 'rate', series: [
    { label: 'Received', get: (p) => p.net_rx_bps, color: COLORS.a },
    { label: 'Sent', get: (p) => p.net_tx_bps, color: COLORS.b }],
    now: (p) => `in ${fmtRate(p.net_rx_bps)} · out ${fmtRate(p.net_tx_bps)}` },
];

export function render(root, ctx, id) {
  const canMetrics = ctx.can('metrics:read');
  const canContainers = ctx.can('containers:read');
  const canWrite = !ctx.readOnly && ctx.can('nodes:write');
  const canDelete = !ctx.readOnly && ctx.can('nodes:delete');
  const base = ctx.guest ? ctx.guest.base : '';
  const err = h('div');
  const title = h('h1', { id: 'node-title' }, 'Node');
  const status = h('span', { id: 'node-status', class: 'status-slot' });
  const alerts = h('div', { id: 'node-alerts' });
  const info = h('dl', { class: 'kv', id: 'node-info' });
  const checkBtn = h('button', { class: 'btn', type: 'button', id: 'node-check' }, 'Check now');
  const checkOut = h('span', { class: 'muted small', id: 'node-check-out', role: 'status', 'aria-live': 'polite' }, '\u00a0');
  const termBtn = !ctx.readOnly && ctx.can('terminal:node')
    ? h('a', { class: 'btn', href: `/terminal?node=${encodeURIComponent(id)}`, 'data-nav': '', id: 'node-terminal' }, 'Terminal') : null;
  const provBtn = canWrite ? h('button', { class: 'btn', type: 'button', id: 'node-provision' }, 'Provision command') : null;
  const provOut = h('div', { id: 'node-provision-out' });
  const delBtn = canDelete ? h('button', { class: 'btn btn-danger', type: 'button', id: 'node-delete' }, 'Delete') : null;
  const chartsCard = canMetrics ? h('section', { class: 'card', id: 'node-charts', 'aria-labelledby': 'charts-title' }) : null;
  const ctrBody = h('tbody', { id: 'node-containers' });
  const ctrCard = canContainers ? h('section', { class: 'card', 'aria-labelledby': 'ctr-title' },
    h('div', { class: 'row between' }, h('h2', { id: 'ctr-title' }, 'Containers on this node'),
      h('a', { href: `${base}/containers`, 'data-nav': '', class: 'link' }, 'All containers →')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Image'), h('th', {}, 'State'), h('th', { class: 'hide-sm' }, 'Status'))),
      ctrBody))) : null;

  // Run a command, labels, collector enrollment (each with its permission).
  const tools = nodeTools(ctx, id, { labels: () => node?.labels, onChanged: () => loadNode() });
  clear(root,
    h('p', { class: 'crumbs' }, h('a', { href: `${base}/nodes`, 'data-nav': '', class: 'link' }, '← Nodes')),
    h('div', { class: 'row between wrap' }, h('div', { class: 'row' }, title, status),
      h('div', { class: 'row' }, checkOut, termBtn, ctx.readOnly ? null : checkBtn, provBtn, delBtn)),
    err, alerts, provOut,
    h('section', { class: 'card' }, info),
    chartsCard, ctrCard, tools);

  let node = null;
  let disposed = false;
  let toolsFilled = false;

  async function loadNode() {
    try {
      node = await api('GET', `/api/v1/nodes/${encodeURIComponent(id)}`);
      if (disposed) return;
      document.title = `${node.name} · Serverbox`;
      title.textContent = node.name;
      clear(status, statusBadge(node.status));
      status.dataset.status = node.status;
      showInfo();
      showAlerts();
      if (!toolsFilled) { toolsFilled = true; for (const t of tools) t.reset?.(); }
      clear(err);
    } catch (e) {
      clear(err, errorBox(e));
    }
  }

  function showInfo() {
    const n = node;
    const labels = Object.entries(n.labels || {});
    const lc = n.last_check;
    clear(info,
      h('dt', {}, 'Address'), h('dd', {}, h('code', {}, `${n.ssh_user}@${n.host}:${n.port}`)),
      h('dt', {}, 'Pinned host key'), h('dd', {}, h('code', { id: 'node-fp' }, n.host_key_fingerprint || '—')),
      h('dt', {}, 'Key'), h('dd', {}, n.key_type || '—', n.public_key ? h('span', { class: 'muted' }, ' (generated by the core)') : null),
      h('dt', {}, 'Docker'), h('dd', { id: 'node-docker', dataset: { docker: n.docker_status || 'none' } }, dockerBadge(n),
        h('span', { class: 'muted' }, ` ${n.docker === 'local' ? 'local socket' : 'over SSH'}`),
        n.docker_status === 'unreachable' && n.docker_reason ? h('div', { class: 'small', id: 'node-docker-reason' }, n.docker_reason) : null,
        ctx.guest ? null : h('div', { class: 'small', id: 'node-engine-links' }, [['images', 'Images'], ['volumes', 'Volumes'], ['networks', 'Networks']]
          .filter(([k]) => ctx.can(`${k}:read`))
          .map(([k, l], i) => [i ? ' · ' : '', h('a', { href: `/${k}?node=${encodeURIComponent(n.id)}`, 'data-nav': '', class: 'link' }, l)]))),
      h('dt', {}, 'Labels'), h('dd', {}, labels.length ? labels.map(([k, v]) => badge(`${k}=${v}`, 'neutral')) : '—'),
      h('dt', {}, 'Collector'), h('dd', { id: 'node-agent', dataset: { agent: n.agent_status || 'none' } }, agentBadge(n),
        h('span', { class: 'muted' }, n.agent_status === 'online' ? ` since ${fmtTime(n.agent_status_changed_at)}`
          : n.agent_status === 'offline' ? ` no samples since ${fmtTime(n.agent_status_changed_at)}`
            : ' no collector has reported (see README, "Collector")')),
      h('dt', {}, 'SSH since'), h('dd', {}, fmtTime(n.status_changed_at), n.status_reason ? h('span', { class: 'muted' }, ` · ${n.status_reason}`) : null),
      lc ? [h('dt', {}, 'Last check'), h('dd', {}, `${fmtTime(lc.checked_at)} · ${lc.duration_ms} ms`, lc.uname ? h('div', { class: 'muted small' }, lc.uname) : null, lc.uptime ? h('div', { class: 'muted small' }, lc.uptime) : null)] : null,
      n.pool ? [h('dt', {}, 'SSH pool'), h('dd', { class: 'muted' }, `${n.pool.open} open · ${n.pool.busy} busy · ${n.pool.hits} reused · ${n.pool.failures} failures`)] : null);
  }

  // A host-key mismatch and a generated key waiting to be installed are
  // the two situations the operator must act on: said first, in full.
  let mismatchSeen = null; // {pinned, presented} from the live event
  function showAlerts() {
    const n = node;
    const out = [];
    if (n.status === 'hostkey_mismatch') {
      const detail = mismatchSeen?.presented
        ? `The node presented ${mismatchSeen.presented}, but ${mismatchSeen.pinned || n.host_key_fingerprint} is pinned.`
        : (n.last_check?.reason || n.status_reason || '');
      const fp = h('input', { id: 'repin-fp', name: 'host_key_fingerprint', placeholder: 'SHA256:…', autocomplete: 'off', spellcheck: 'false' });
      const repinErr = h('div');
      const repin = canWrite ? h('form', { class: 'inline-form', onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api('PATCH', `/api/v1/nodes/${encodeURIComponent(id)}`, { host_key_fingerprint: fp.value.trim() });
          toast('New host key pinned');
          loadNode();
        } catch (x) { clear(repinErr, errorBox(x)); }
      } }, h('div', { class: 'field grow' }, h('label', { for: 'repin-fp' }, 'Pin a new fingerprint, after checking it on the node itself'), fp),
        h('button', { class: 'btn btn-danger', type: 'submit' }, 'Pin new key')) : null;
      out.push(h('div', { class: 'alert alert-error', role: 'alert', id: 'hostkey-alert' },
        h('p', {}, h('strong', {}, 'Host key mismatch: every connection to this node is refused.')),
        h('p', { id: 'hostkey-detail' }, detail),
        h('p', { class: 'small' }, 'Pinned: ', h('code', {}, n.host_key_fingerprint), '. If the node was reinstalled this is expected; otherwise something else may be answering at its address.'),
        repinErr, repin));
    }
    if (n.public_key && n.status !== 'online') {
      out.push(h('div', { class: 'alert alert-warn', role: 'status' },
        h('p', {}, h('strong', {}, 'Waiting for the public key to be installed.')),
        publicKeyPanel(n, { onChecked: () => loadNode() })));
    }
    clear(alerts, out);
  }

  checkBtn.addEventListener('click', async () => {
    checkBtn.disabled = true;
    checkOut.textContent = 'Checking…';
    try {
      const c = await api('POST', `/api/v1/nodes/${encodeURIComponent(id)}/check`);
      // The reason, when there is one, is on the page (status line, alerts).
      checkOut.textContent = `checked: ${c.status.replace(/_/g, ' ')} · ${c.duration_ms} ms`;
      await loadNode();
    } catch (e) {
      checkOut.textContent = '\u00a0';
      clear(err, errorBox(e));
    } finally { checkBtn.disabled = false; }
  });
  // The exact command that provisions this node with Ansible (ansible/nodes.yml),
  // holding a fresh one-time enroll token: shown once, with a copy button.
  provBtn?.addEventListener('click', async () => {
    provBtn.disabled = true;
    try {
      const r = await api('POST', `/api/v1/nodes/${encodeURIComponent(id)}/provision-command`, { core_url: location.origin });
      const copy = h('button', { class: 'btn btn-small', type: 'button', id: 'node-provision-copy', onclick: () => copyText(r.command, copy) }, 'Copy');
      clear(provOut, h('section', { class: 'card', 'aria-labelledby': 'prov-title' },
        h('h2', { id: 'prov-title' }, 'Provision this node'),
        h('p', { class: 'small' }, 'Run in a clone of the Serverbox repository (after ', h('code', {}, 'make'), '); it installs Docker, tmux, Caddy and the collector, which enrolls with a one-time token valid until ', fmtTime(r.expires_at), '. Shown once.'),
        h('div', { class: 'row' }, h('code', { class: 'secret', id: 'node-provision-command' }, r.command), copy)));
    } catch (e) {
      clear(err, errorBox(e));
    } finally { provBtn.disabled = false; }
  });
  delBtn?.addEventListener('click', async () => {
    if (!node || !(await confirmDialog(`Delete ${node.name}?`, 'The node and its stored key are removed from Serverbox. Nothing on the node itself is changed.', 'Delete'))) return;
    try {
      await api('DELETE', `/api/v1/nodes/${encodeURIComponent(id)}`);
      toast(`${node.name} deleted`);
      ctx.navigate('/nodes');
    } catch (e) { clear(err, errorBox(e)); }
  });

  // ---- containers -----------------------------------------------------------
  let ctrBusy = false;
  async function loadContainers() {
    if (!canContainers || ctrBusy) return;
    ctrBusy = true;
    try {
      const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(id)}/containers`);
      const rows = r.containers || [];
      const down = (r.unavailable || []).map((u) => u.message).filter(Boolean);
      clear(ctrBody, rows.length ? rows.map((c) => {
        const s = c.state;
        return h('tr', { dataset: { name: c.name || c.id.slice(0, 12), state: s } },
          h('td', {}, c.name || c.id.slice(0, 12)),
          h('td', { class: 'ellipsis', title: c.image }, h('code', {}, c.image)),
          h('td', {}, badge(s, s === 'running' ? 'ok' : s === 'exited' || s === 'dead' ? 'err' : 'warn')),
          h('td', { class: 'hide-sm muted nowrap' }, c.status || ''));
      }) : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, down.length ? `The node's Docker engine cannot be reached: ${down.join('; ')}` : 'No containers.')));
    } catch (e) {
      clear(ctrBody, h('tr', {}, h('td', { colspan: 4 }, errorBox(new Error(`The containers cannot be listed: ${e.message}`)))));
    } finally { ctrBusy = false; }
  }

  // ---- charts ---------------------------------------------------------------
  let range = RANGES[0];
  let points = []; // sorted by t (ms)
  const charts = new Map(); // key → {def, plot, el, now}
  let seriesErr = null;
  let loadGen = 0;

  function buildChartsCard() {
    const buttons = RANGES.map((r) => h('button', { class: 'btn btn-small seg', type: 'button', 'data-range': r.key, 'aria-pressed': String(r === range),
      onclick: () => { if (range !== r) { range = r; for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.range === r.key)); loadSeries(); } } }, r.label));
    seriesErr = h('div');
    const grid = h('div', { class: 'charts' }, CHARTS.map((d) => {
      const now = h('span', { class: 'chart-now', id: `chart-${d.key}-now` }, '—');
      const plotBox = h('div', { class: 'chart-plot', id: `chart-${d.key}`, role: 'img', 'aria-label': `${d.title} over the selected range`, dataset: { points: '0' } });
      charts.set(d.key, { def: d, plot: null, el: plotBox, now });
      return h('div', { class: 'chart' },
        h('div', { class: 'row between chart-head' }, h('h3', {}, d.title), now),
        h('div', { class: 'chart-legend' }, d.series.map((s) => h('span', { class: 'legend-item' }, h('span', { class: 'swatch', dataset: { color: s.color } }), s.label))),
        plotBox);
    }));
    clear(chartsCard,
      h('div', { class: 'row between wrap' }, h('h2', { id: 'charts-title' }, 'Metrics'),
        h('div', { class: 'seg-group', role: 'group', 'aria-label': 'Time range' }, buttons)),
      seriesErr,
      h('p', { class: 'muted small', id: 'charts-empty', hidden: true }, 'No samples in this range. Metrics come from serverbox-collector on the node (see README, "Collector").'),
      grid);
    for (const sw of chartsCard.querySelectorAll('.swatch')) sw.style.background = sw.dataset.color;
  }

  function dataFor(def) {
    const xs = points.map((p) => p.t / 1000);
    return [xs, ...def.series.map((s) => points.map((p) => s.get(p)))];
  }

  function redraw() {
    const last = points.at(-1);
    const empty = chartsCard.querySelector('#charts-empty');
    if (empty) empty.hidden = points.length > 0;
    for (const c of charts.values()) {
      c.el.dataset.points = String(points.length);
      c.el.dataset.lastT = last ? String(last.t) : '';
      c.now.textContent = last ? c.def.now(last) : '—';
      if (c.plot) c.plot.setData(dataFor(c.def));
    }
  }

  async function makePlots() {
    let uPlot;
    try { uPlot = await loadUplot(); } catch (e) {
      clear(seriesErr, errorBox(new Error(`the chart library could not be loaded (${e.message}); build the dashboard assets with make`)));
      return;
    }
    if (disposed) return;
    for (const c of charts.values()) {
      const width = Math.max(200, c.el.clientWidth);
      const opts = {
        width, height: 160,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        // The x axis spans the whole range chosen, ending now, so 1 h, 24 h
        // and 7 d look like what they are even while samples are few.
        scales: { x: { time: true, range: () => [(Date.now() / 1000) - range.span, Date.now() / 1000] }, y: c.def.unit === 'pct' ? { range: [0, 100] } : { range: (u, min, max) => [0, Math.max((max || 0) * 1.1, 1024)] } },
        axes: [
          { stroke: COLORS.axis, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid } },
          { stroke: COLORS.axis, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid }, size: 64, values: axisFmt(c.def.unit) },
        ],
        series: [{}, ...c.def.series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, fill: `${s.color}22`, spanGaps: false, points: { show: false } }))],
      };
      c.plot = new uPlot(opts, dataFor(c.def), c.el);
    }
    redraw();
  }

  const ro = chartsCard ? new ResizeObserver(() => {
    for (const c of charts.values()) if (c.plot) c.plot.setSize({ width: Math.max(200, c.el.clientWidth), height: 160 });
  }) : null;

  async function loadSeries() {
    const gen = ++loadGen;
    const to = Date.now();
    const from = to - range.span * 1000;
    try {
      const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(id)}/metrics?from=${from}&to=${to}&step=${range.step}`);
      if (gen !== loadGen || disposed) return;
      const ps = (r.points || []).map(toPoint).filter((p) => p && p.t);
      const latest = toPoint(r.latest);
      // The in-memory latest sample may be newer than the last stored bucket.
      if (latest && latest.t && (!ps.length || latest.t > ps.at(-1).t) && range.key === '1h') ps.push(latest);
      points = mergeLive(ps);
      clear(seriesErr);
      redraw();
    } catch (e) {
      if (gen === loadGen) clear(seriesErr, errorBox(e));
    }
  }

  // Live points that arrived while the series was loading are kept.
  let pending = [];
  function mergeLive(ps) {
    const lastT = ps.length ? ps.at(-1).t : 0;
    const extra = pending.filter((p) => p.t > lastT);
    pending = [];
    return [...ps, ...extra];
  }

  function addLive(p) {
    if (!p || !p.t) return;
    pending.push(p);
    if (pending.length > 50) pending.shift();
    const last = points.at(-1);
    if (last && p.t <= last.t) return;
    // Coarse ranges show buckets: a live sample starts a new one only once a
    // step has passed.
    if (last && range.key !== '1h' && p.t < last.t + range.step * 1000) return;
    points.push(p);
    const cut = Date.now() - range.span * 1000;
    while (points.length && points[0].t < cut) points.shift();
    redraw();
  }

  loadNode();
  loadContainers();
  let offMetrics = () => {};
  if (chartsCard) {
    buildChartsCard();
    ro.observe(chartsCard);
    makePlots();
    loadSeries();
    offMetrics = subscribe(`metrics/node/${id}`, (body) => {
      const lp = liveNodePoint(body);
      if (lp && lp.nodeId === id) addLive(lp.point);
    });
  }
  let t = null;
  const offEvents = onEvent((e) => {
    const type = typeof e.type === 'string' ? e.type : '';
    const about = e.stream === `node/${id}` || e.data?.node_id === id || e.data?.id === id;
    if (!about) return;
    if (type === 'node.deleted') { clear(err, errorBox(new Error('This node has been deleted.'))); return; }
    if (type === 'node.hostkey_mismatch') mismatchSeen = { pinned: e.data?.pinned, presented: e.data?.presented };
    if (type.startsWith('node.')) { clearTimeout(t); t = setTimeout(loadNode, 150); }
    if (type.startsWith('container.')) loadContainers();
  });
  // Containers also change outside Serverbox's events; a slow refresh.
  const timer = setInterval(loadContainers, 15000);
  return () => {
    disposed = true;
    clearInterval(timer);
    clearTimeout(t);
    offEvents();
    offMetrics();
    ro?.disconnect();
    for (const c of charts.values()) c.plot?.destroy();
  };
}
