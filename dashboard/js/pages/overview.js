// Fleet health and the latest events. Reads only: /health/ready, the nodes
// and containers, and the audit log when the caller may read them; new
// events stream in live (js/live.js), else the page refreshes every few
// seconds.
import { api, qs } from '../api.js';
import { h, clear, errorBox, fmtTime, outcomeBadge, badge } from '../ui.js';
import { onEvent, liveState } from '../live.js';

const MAX_ROWS = 25;

function stat(id, label) {
  const value = h('div', { class: 'stat-value', id }, '—');
  const sub = h('div', { class: 'stat-sub', id: `${id}-sub` }, '\u00a0');
  return { el: h('div', { class: 'card stat' }, h('div', { class: 'stat-label' }, label), value, sub), value, sub };
}

function eventRow(e) {
  return h('tr', { dataset: { seq: e.seq } },
    h('td', { class: 'num' }, e.seq),
    h('td', { class: 'nowrap hide-sm' }, fmtTime(e.occurred_at)),
    h('td', {}, h('code', {}, e.type)),
    h('td', {}, e.actor?.name || e.actor?.kind || '—'),
    h('td', {}, outcomeBadge(e.outcome)));
}

export function render(root, ctx) {
  const health = stat('stat-health', 'Core');
  const db = stat('stat-db', 'Database');
  const redis = stat('stat-redis', 'Redis');
  const head = stat('stat-head', 'Audit chain head');
  const canNodes = ctx.can('nodes:read');
  const nodesStat = stat('stat-nodes', 'Nodes online');
  const canContainers = ctx.can('containers:read');
  const ctr = stat('stat-containers', 'Containers running');
  const err = h('div');
  const tbody = h('tbody', { id: 'recent-events' });
  const canAudit = ctx.can('audit:read');
  const canAlerts = ctx.can('alerts:read');
  const canAck = ctx.can('alerts:write');
  // A placeholder row of the same height as the answer's, so the page does not move when it arrives.
  const alertRows = h('tbody', { id: 'firing-alerts' }, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Loading…')));
  const alertErr = h('div');
  clear(root,
    h('h1', {}, 'Overview'),
    err,
    h('div', { class: 'grid stats' }, health.el, db.el, redis.el, canAudit && head.el, canNodes && nodesStat.el, canContainers && ctr.el),
    canAlerts && h('section', { class: 'card', id: 'alerts' },
      h('div', { class: 'row between' }, h('h2', {}, 'Firing alerts'), h('a', { href: '/settings', 'data-nav': '', class: 'link' }, 'Rules, channels and silences →')),
      alertErr,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Severity'), h('th', {}, 'Alert'), h('th', {}, 'Node'), h('th', { class: 'hide-sm' }, 'Since'), h('th', {}, 'State'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
          alertRows))),
    canAudit && h('section', { class: 'card' },
      h('div', { class: 'row between' }, h('h2', {}, 'Recent events'), h('a', { href: '/audit', 'data-nav': '', class: 'link' }, 'Open the audit log →')),
      h('div', { class: 'table-wrap fixed-rows' },
        h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'Seq'), h('th', { class: 'hide-sm' }, 'When'), h('th', {}, 'Type'), h('th', {}, 'Actor'), h('th', {}, 'Outcome'))),
          tbody))));

  let seen = 0;
  async function refreshHealth() {
    try {
      const r = await fetch('/health/ready', { cache: 'no-store' });
      const j = await r.json();
      health.value.textContent = j.status === 'ready' ? 'Ready' : 'Not ready';
      health.value.className = `stat-value ${j.status === 'ready' ? 'ok' : 'err'}`;
      health.sub.textContent = '\u00a0';
      const d = j.dependencies || {};
      db.value.textContent = d.database?.state === 'up' ? 'Up' : 'Down';
      db.value.className = `stat-value ${d.database?.state === 'up' ? 'ok' : 'err'}`;
      db.sub.textContent = d.database?.schema ? `schema ${d.database.schema}` : '\u00a0';
      const rs = d.redis?.state || 'unknown';
      redis.value.textContent = rs === 'up' ? 'Up' : rs === 'not_configured' ? 'Not used' : rs[0].toUpperCase() + rs.slice(1);
      redis.value.className = `stat-value ${rs === 'up' ? 'ok' : rs === 'degraded' ? 'warn' : 'muted'}`;
    } catch (e) {
      health.value.textContent = 'Down';
      health.value.className = 'stat-value err';
      health.sub.textContent = 'unreachable from this browser';
    }
  }

  function addEvents(events) {
    for (const e of events) {
      if (e.seq <= seen) continue;
      seen = e.seq;
      tbody.prepend(eventRow(e));
    }
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild.remove();
    if (seen) { head.value.textContent = `#${seen}`; }
  }

  async function refreshEvents() {
    if (!canAudit) return;
    try {
      // Walk forward from what we have; on first load, jump near the end.
      let after = seen;
      if (!seen) {
        const v = await api('GET', '/api/v1/audit/verify');
        head.value.textContent = `#${v.head_seq}`;
        head.sub.replaceChildren(v.ok ? badge('chain verified', 'ok') : badge(`broken at #${v.first_bad_seq}`, 'err'));
        after = Math.max(0, v.head_seq - MAX_ROWS);
      }
      for (let i = 0; i < 10; i++) {
        const r = await api('GET', `/api/v1/audit${qs({ after, limit: 200 })}`);
        addEvents(r.events);
        if (r.next_after == null || !r.events.length) break;
        after = r.next_after;
      }
      clear(err);
    } catch (e) {
      clear(err, errorBox(e));
    }
  }

  async function refreshNodes() {
    if (!canNodes) return;
    try {
      const r = await api('GET', '/api/v1/nodes');
      const all = r.items || [];
      const by = (st) => all.filter((n) => n.status === st).length;
      nodesStat.value.textContent = `${by('online')} / ${all.length}`;
      nodesStat.value.className = `stat-value${all.length && by('online') < all.length ? ' warn' : ''}`;
      // SSH, Docker and the collector are told apart, as the core reports
      // them: "all online" only when nothing is down, Docker included.
      const dockerDown = all.filter((n) => n.docker_status === 'unreachable');
      const silent = all.filter((n) => n.agent_status === 'offline').length;
      const parts = [];
      if (by('offline')) parts.push(`${by('offline')} offline`);
      if (by('hostkey_mismatch')) parts.push(`${by('hostkey_mismatch')} host key mismatch`);
      if (dockerDown.length) parts.push(`Docker unreachable on ${dockerDown.length}`);
      if (silent) parts.push(`${silent} collector${silent === 1 ? '' : 's'} silent`);
      nodesStat.sub.textContent = parts.length ? parts.join(' · ') : all.length ? 'all online' : 'no nodes yet';
      nodesStat.sub.className = `stat-sub${by('hostkey_mismatch') ? ' err' : parts.length ? ' warn' : ''}`;
      nodesStat.sub.title = dockerDown.map((n) => `${n.name}: ${n.docker_reason || 'Docker unreachable'}`).join('\n');
    } catch (e) {
      nodesStat.value.textContent = '—';
      nodesStat.sub.textContent = e.message;
    }
  }

  async function refreshContainers() {
    if (!canContainers) return;
    try {
      const r = await api('GET', '/api/v1/containers');
      const all = r.containers || [];
      ctr.value.textContent = String(all.filter((c) => c.state === 'running').length);
      const down = (r.unavailable || []).length;
      // The same words as the nodes' card: these are engines not answering.
      ctr.sub.textContent = `of ${all.length}${down ? ` · Docker unreachable on ${down} node${down === 1 ? '' : 's'}` : ''}`;
      ctr.sub.className = `stat-sub${down ? ' warn' : ''}`;
      ctr.sub.title = (r.unavailable || []).map((u) => `${u.node_name || u.node_id}: ${u.message}`).join('\n');
    } catch (e) {
      ctr.value.textContent = '—';
      ctr.sub.textContent = e.message;
    }
  }

  async function refreshAlerts() {
    if (!canAlerts) return;
    try {
      const r = await api('GET', '/api/v1/alerts?state=open&limit=100');
      clear(alertRows, r.alerts.length ? r.alerts.map((a) => h('tr', { dataset: { alert: a.id, state: a.state, rule: a.rule_name } },
        h('td', {}, badge(a.severity, a.severity === 'critical' ? 'err' : a.severity === 'warning' ? 'warn' : 'neutral')),
        h('td', {}, h('strong', {}, a.rule_name), h('div', { class: 'muted' }, a.summary), a.silenced ? badge('silenced', 'neutral') : null),
        h('td', {}, a.node_name || a.node_id || '—'),
        h('td', { class: 'nowrap hide-sm' }, fmtTime(a.fired_at)),
        h('td', {}, a.state === 'acknowledged' ? badge(`acknowledged by ${a.acknowledged_by || '?'}`, 'neutral') : badge('firing', 'err')),
        h('td', { class: 'actions' }, canAck && a.state === 'firing' && h('button', { class: 'btn btn-small', type: 'button', onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try { await api('POST', `/api/v1/alerts/${a.id}/ack`); } catch (e) { clear(alertErr, errorBox(e)); }
          refreshAlerts();
        } }, 'Acknowledge')))) : h('tr', {}, h('td', { colspan: 6, class: 'muted', id: 'no-alerts' }, 'Nothing is firing.')));
      clear(alertErr);
    } catch (e) { clear(alertErr, errorBox(e)); }
  }

  refreshHealth();
  refreshAlerts();
  refreshEvents();
  refreshContainers();
  refreshNodes();
  let nodesTimer = null;
  let alertsTimer = null;
  const off = onEvent((e) => {
    if (canAudit) addEvents([e]);
    if (typeof e.type === 'string' && e.type.startsWith('node.')) { clearTimeout(nodesTimer); nodesTimer = setTimeout(refreshNodes, 150); }
    if (typeof e.type === 'string' && e.type.startsWith('alert.') && !e.type.startsWith('alert.deliver')) { clearTimeout(alertsTimer); alertsTimer = setTimeout(refreshAlerts, 150); }
  });
  // Live: events arrive over SSE and a slow poll is only a safety net (for
  // event types the stream subscription does not name). Otherwise poll.
  let n = 0;
  const timer = setInterval(() => {
    refreshHealth();
    refreshContainers();
    if (liveState() !== 'live') { refreshNodes(); refreshAlerts(); }
    if (liveState() !== 'live' || ++n % 6 === 0) refreshEvents();
  }, 5000);
  return () => { clearInterval(timer); clearTimeout(nodesTimer); clearTimeout(alertsTimer); off(); };
}
