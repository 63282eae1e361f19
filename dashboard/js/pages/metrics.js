// Metrics: the whole fleet side by side. Every node the caller sees with its
// CPU, memory and disk now (the collector's latest sample, as the core holds
// it), the three over the last hour on shared charts (one line per node),
// and the busiest containers of all nodes (each with its own charts). The
// figures are the core's series and the collectors' live samples; nothing
// is derived here but percentages of what they report.
import { api } from '../api.js';
import { h, clear, errorBox, fmtBytes, fmtPct, gauge } from '../ui.js';
import { subscribe } from '../live.js';
import { toPoint, liveNodePoint, memPct, diskPct } from '../metrics.js';
import { emptyState } from '../widgets.js';
import { timeChart, legend, PALETTE, containerCharts } from '../charts.js';
import { agentBadge } from './nodes.js';

const SPAN = 3600;
const TOP = 10;
const CHARTS = [
  { key: 'cpu', title: 'CPU', get: (p) => p.cpu_pct },
  { key: 'mem', title: 'Memory', get: (p) => memPct(p) },
  { key: 'disk', title: 'Disk used', get: (p) => diskPct(p) },
];

export function render(root, ctx) {
  const base = ctx.guest ? ctx.guest.base : '';
  const err = h('div');
  const tbody = h('tbody', { id: 'fleet-rows' });
  const topBody = h('tbody', { id: 'top-containers' });
  const chartSlot = h('div', { id: 'chart-slot' });
  const chartsGrid = h('div', { class: 'charts charts-3' });
  const legendSlot = h('div');
  const nodesCard = h('section', { class: 'card' }, h('h2', {}, 'Nodes'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'CPU'), h('th', {}, 'Memory'), h('th', {}, 'Disk'), h('th', {}, 'Collector'))),
      tbody)));
  const body = h('div', {}, nodesCard,
    h('section', { class: 'card', id: 'fleet-charts' }, h('div', { class: 'row between wrap' }, h('h2', {}, 'The last hour'), legendSlot), chartsGrid),
    h('section', { class: 'card' }, h('h2', {}, 'Top containers by CPU'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Container'), h('th', {}, 'Node'), h('th', {}, 'CPU'), h('th', {}, 'Memory'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        topBody))),
    chartSlot);
  clear(root, h('h1', {}, 'Metrics'), err, body);

  let disposed = false;
  let nodes = [];
  const series = new Map(); // node id → {node, points, latest, gauges, row}
  const plots = new Map(); // chart key → {def, plot, box}
  let charts = null;

  function nodeRow(n) {
    const g = { cpu: gauge(`fleet-cpu-${n.id}`, `CPU of ${n.name}`), mem: gauge(`fleet-mem-${n.id}`, `Memory of ${n.name}`), disk: gauge(`fleet-disk-${n.id}`, `Disk of ${n.name}`) };
    const row = h('tr', { dataset: { node: n.name } },
      h('td', {}, h('a', { href: `${base}/nodes/${encodeURIComponent(n.id)}`, 'data-nav': '', class: 'link' }, n.name)),
      h('td', {}, g.cpu.el), h('td', {}, g.mem.el), h('td', {}, g.disk.el),
      h('td', {}, agentBadge(n)));
    return { g, row };
  }

  function showNode(s) {
    const p = s.latest;
    s.g.cpu.update(p?.cpu_pct ?? null);
    s.g.mem.update(memPct(p), p && p.mem_used !== null ? `${fmtPct(memPct(p))} · ${fmtBytes(p.mem_used)} of ${fmtBytes(p.mem_total)}` : null);
    s.g.disk.update(diskPct(p), p && p.disk_used !== null ? `${fmtPct(diskPct(p))} · ${fmtBytes(p.disk_used)} of ${fmtBytes(p.disk_total)}` : null);
  }

  function showTop() {
    const all = [];
    for (const s of series.values()) for (const c of s.containers || []) all.push({ ...c, node: s.node });
    all.sort((a, b) => (b.cpu ?? -1) - (a.cpu ?? -1));
    const top = all.slice(0, TOP);
    clear(topBody, top.length ? top.map((c) => h('tr', { dataset: { container: c.name || c.id } },
      h('td', {}, h('code', {}, c.name || String(c.id).slice(0, 12))),
      h('td', {}, c.node.name),
      h('td', { class: 'nowrap' }, fmtPct(c.cpu)),
      h('td', { class: 'nowrap' }, `${fmtBytes(c.mem)}${c.mem_limit ? ` of ${fmtBytes(c.mem_limit)}` : ''}`),
      h('td', { class: 'actions' }, h('button', { class: 'btn btn-small', type: 'button', onclick: () => {
        charts?.close();
        charts = containerCharts({ nodeId: c.node.id, containerId: c.id, name: c.name || String(c.id).slice(0, 12), nodeName: c.node.name });
        clear(chartSlot, charts.el);
        charts.el.scrollIntoView({ block: 'nearest' });
      } }, 'Charts'))))
      : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No container figures: collectors report them when they may read the node\'s Docker socket.')));
  }

  function redrawCharts() {
    const list = [...series.values()];
    const xsSet = new Set();
    for (const s of list) for (const p of s.points) xsSet.add(Math.round(p.t / 1000));
    const xs = [...xsSet].sort((a, b) => a - b);
    for (const c of plots.values()) {
      // One line per node on a shared time axis: a node without a point at
      // a time has a gap there.
      const ys = list.map((s) => {
        const at = new Map(s.points.map((p) => [Math.round(p.t / 1000), c.def.get(p)]));
        return xs.map((x) => (at.has(x) ? at.get(x) : null));
      });
      c.box.dataset.points = String(xs.length);
      c.plot?.set(xs, ...ys);
    }
  }

  async function load() {
    try {
      const r = await api('GET', '/api/v1/nodes');
      if (disposed) return;
      nodes = r.items || [];
      if (!nodes.length) {
        clear(body, emptyState('metrics-empty', 'No nodes yet', 'Each node\'s collector sends its CPU, memory, disk and container figures; add a node and enroll its collector (the node page says how).'));
        return;
      }
      series.clear();
      // 30 s buckets read the raw samples (60 s and more read the one-minute
      // roll-ups, which lag behind by up to a minute).
      const to = Date.now();
      await Promise.all(nodes.map(async (n) => {
        const { g, row } = nodeRow(n);
        const s = { node: n, points: [], latest: null, containers: [], g, row };
        series.set(n.id, s);
        try {
          const m = await api('GET', `/api/v1/nodes/${encodeURIComponent(n.id)}/metrics?from=${to - SPAN * 1000}&to=${to}&step=30`);
          s.points = (m.points || []).map(toPoint).filter((p) => p && p.t);
          const latest = toPoint(m.latest);
          if (latest?.t && (!s.points.length || latest.t > s.points.at(-1).t)) s.points.push(latest);
          s.latest = latest || s.points.at(-1) || null;
          s.containers = m.latest?.containers || [];
        } catch { /* this node's figures are missing; its row says — */ }
      }));
      if (disposed) return;
      clear(tbody, [...series.values()].map((s) => s.row));
      for (const s of series.values()) showNode(s);
      showTop();
      await buildCharts();
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  async function buildCharts() {
    for (const c of plots.values()) c.plot?.destroy();
    plots.clear();
    const list = [...series.values()];
    const colors = list.map((_, i) => PALETTE[i % PALETTE.length]);
    clear(legendSlot, legend(list.map((s, i) => ({ label: s.node.name, color: colors[i] }))));
    clear(chartsGrid, CHARTS.map((def) => {
      const box = h('div', { class: 'chart-plot', id: `fleet-chart-${def.key}`, role: 'img', 'aria-label': `${def.title} of every node over the last hour`, dataset: { points: '0' } });
      plots.set(def.key, { def, box, plot: null });
      return h('div', { class: 'chart' }, h('div', { class: 'row between chart-head' }, h('h3', {}, def.title), h('span', { class: 'chart-now' }, '% of the node')), box);
    }));
    try {
      for (const c of plots.values()) c.plot = await timeChart(c.box, { unit: 'pct', span: SPAN, series: list.map((s, i) => ({ label: s.node.name, color: colors[i] })) });
    } catch (e) {
      clear(err, errorBox(new Error(`the chart library could not be loaded (${e.message}); build the dashboard assets with make`)));
    }
    redrawCharts();
  }

  // Live: every visible node's samples (topic "metrics").
  let t = null;
  const off = subscribe('metrics', (msg) => {
    const lp = liveNodePoint(msg);
    const s = lp && series.get(lp.nodeId);
    if (!s) return;
    if (!s.points.length || lp.point.t > s.points.at(-1).t) s.points.push(lp.point);
    const cut = Date.now() - SPAN * 1000;
    while (s.points.length && s.points[0].t < cut) s.points.shift();
    s.latest = lp.point;
    s.containers = msg?.data?.sample?.containers || s.containers;
    showNode(s);
    // Coalesced: many nodes reporting at once redraw once.
    if (!t) t = setTimeout(() => { t = null; if (!disposed) { redrawCharts(); showTop(); } }, 250);
  });
  load();
  return () => {
    disposed = true;
    clearTimeout(t);
    off();
    charts?.close();
    for (const c of plots.values()) c.plot?.destroy();
  };
}
