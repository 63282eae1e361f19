// Time charts (the vendored uPlot), shared by the node page, the Metrics page
// and the per-container charts: loading the library once, axis formats, a
// chart that spans a fixed window ending now, and one container's CPU and
// memory panel (GET …/containers/{cid}/metrics, then the live samples of
// its node's collector).
import { api } from './api.js';
import { h, clear, errorBox, fmtBytes, fmtRate, fmtPct } from './ui.js';
import { subscribe } from './live.js';

export const COLORS = { a: '#818cf8', b: '#22c55e', grid: '#2a2a3a', axis: '#94a3b8' };
// One colour per series when many nodes share a chart.
export const PALETTE = ['#818cf8', '#22c55e', '#f59e0b', '#ef4444', '#38bdf8', '#e879f9', '#a3e635', '#fb923c'];

let uplotModule = null;
export async function loadUplot() {
  if (!uplotModule) {
    uplotModule = import('../vendor/uplot.js').then((m) => {
      if (!document.querySelector('link[data-uplot]')) {
        document.head.append(h('link', { rel: 'stylesheet', href: m.cssHref, 'data-uplot': '' }));
      }
      return m.default;
    });
    uplotModule.catch(() => { uplotModule = null; });
  }
  return uplotModule;
}

export function axisFmt(unit) {
  if (unit === 'pct') return (u, vals) => vals.map((v) => `${v}%`);
  if (unit === 'bytes') return (u, vals) => vals.map((v) => fmtBytes(v));
  return (u, vals) => vals.map((v) => fmtRate(v).replace('/s', ''));
}

// A chart in `el` over the last `span` seconds: {set(xsSeconds, ...ys),
// destroy()}. unit: pct | bytes | rate. Resizes with its box. Rejects when
// uPlot cannot be loaded (the caller says so).
export async function timeChart(el, { unit, series, span, height = 160 }) {
  const uPlot = await loadUplot();
  const opts = {
    width: Math.max(200, el.clientWidth), height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: { x: { time: true, range: () => [(Date.now() / 1000) - span, Date.now() / 1000] },
      y: unit === 'pct' ? { range: [0, 100] } : { range: (u, min, max) => [0, Math.max((max || 0) * 1.1, 1024)] } },
    axes: [
      { stroke: COLORS.axis, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid } },
      { stroke: COLORS.axis, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid }, size: 64, values: axisFmt(unit) },
    ],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, fill: series.length === 1 ? `${s.color}22` : undefined, spanGaps: false, points: { show: false } }))],
  };
  const plot = new uPlot(opts, [[], ...series.map(() => [])], el);
  const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height }));
  ro.observe(el);
  return {
    set: (xs, ...ys) => plot.setData([xs, ...ys]),
    destroy: () => { ro.disconnect(); plot.destroy(); },
  };
}

// A legend of coloured swatches (colours set through the CSSOM: strict CSP).
export function legend(items) {
  const el = h('div', { class: 'chart-legend' }, items.map((s) => h('span', { class: 'legend-item' }, h('span', { class: 'swatch', dataset: { color: s.color } }), s.label)));
  for (const sw of el.querySelectorAll('.swatch')) sw.style.background = sw.dataset.color;
  return el;
}

const SPAN = 3600;
// A container sample as the collector sends it → a point like the series API's.
const fromSample = (c, ts) => ({ t: ts, cpu_pct: c.cpu ?? null, mem_used: c.mem ?? null, mem_limit: c.mem_limit ?? null });

// One container's CPU and memory over the last hour, extended live.
// Returns {el, close()}.
export function containerCharts({ nodeId, containerId, name, nodeName }) {
  const err = h('div');
  const cpuNow = h('span', { class: 'chart-now', id: 'cchart-cpu-now' }, '—');
  const memNow = h('span', { class: 'chart-now', id: 'cchart-mem-now' }, '—');
  const cpuBox = h('div', { class: 'chart-plot', id: 'cchart-cpu', role: 'img', 'aria-label': `CPU of ${name} over the last hour`, dataset: { points: '0' } });
  const memBox = h('div', { class: 'chart-plot', id: 'cchart-mem', role: 'img', 'aria-label': `Memory of ${name} over the last hour`, dataset: { points: '0' } });
  const empty = h('p', { class: 'muted small', id: 'cchart-empty', hidden: true }, 'No samples of this container in the last hour. Container figures come from serverbox-collector on the node when it may read the Docker socket.');
  let closed = false;
  const el = h('section', { class: 'card', id: 'container-charts', dataset: { container: containerId } },
    h('div', { class: 'row between wrap' }, h('h2', {}, `${name} · CPU and memory`, nodeName ? h('span', { class: 'muted small' }, ` on ${nodeName}`) : null),
      h('button', { class: 'btn btn-small', type: 'button', onclick: () => close() }, 'Close')),
    err, empty,
    h('div', { class: 'charts' },
      h('div', { class: 'chart' }, h('div', { class: 'row between chart-head' }, h('h3', {}, 'CPU'), cpuNow), legend([{ label: 'CPU (of one core = 100%)', color: COLORS.a }]), cpuBox),
      h('div', { class: 'chart' }, h('div', { class: 'row between chart-head' }, h('h3', {}, 'Memory'), memNow), legend([{ label: 'Used', color: COLORS.a }]), memBox)));
  let points = [];
  let cpu = null, mem = null;
  const redraw = () => {
    const cut = Date.now() - SPAN * 1000;
    points = points.filter((p) => p.t >= cut);
    const last = points.at(-1);
    empty.hidden = points.length > 0;
    for (const b of [cpuBox, memBox]) { b.dataset.points = String(points.length); b.dataset.lastT = last ? String(last.t) : ''; }
    cpuNow.textContent = last ? fmtPct(last.cpu_pct) : '—';
    memNow.textContent = last ? `${fmtBytes(last.mem_used)}${last.mem_limit ? ` of ${fmtBytes(last.mem_limit)}` : ''}` : '—';
    const xs = points.map((p) => p.t / 1000);
    cpu?.set(xs, points.map((p) => p.cpu_pct));
    mem?.set(xs, points.map((p) => p.mem_used));
  };
  const live = [];
  const off = subscribe(`metrics/node/${nodeId}`, (body) => {
    const s = body?.data?.sample;
    const c = (s?.containers || []).find((x) => x.id === containerId);
    if (!c || !s.ts) return;
    const p = fromSample(c, s.ts);
    if (points.length && p.t <= points.at(-1).t) return;
    live.push(p);
    points.push(p);
    redraw();
  });
  (async () => {
    try {
      [cpu, mem] = await Promise.all([
        timeChart(cpuBox, { unit: 'pct', span: SPAN, series: [{ label: 'CPU', color: COLORS.a }] }).catch(() => null),
        timeChart(memBox, { unit: 'bytes', span: SPAN, series: [{ label: 'Used', color: COLORS.a }] }).catch(() => null),
      ]);
      if (!cpu) clear(err, errorBox(new Error('the chart library could not be loaded; build the dashboard assets with make')));
      const to = Date.now();
      const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(nodeId)}/containers/${encodeURIComponent(containerId)}/metrics?from=${to - SPAN * 1000}&to=${to}&step=10`);
      if (closed) return;
      const ps = (r.points || []).map((x) => ({ t: Number(x.t), cpu_pct: x.cpu_pct === null ? null : Number(x.cpu_pct), mem_used: x.mem_used === null ? null : Number(x.mem_used), mem_limit: x.mem_limit === null ? null : Number(x.mem_limit) }));
      const lastT = ps.length ? ps.at(-1).t : 0;
      points = [...ps, ...live.filter((p) => p.t > lastT)];
      redraw();
    } catch (e) { if (!closed) clear(err, errorBox(e)); }
  })();
  function close() {
    if (closed) return;
    closed = true;
    off();
    cpu?.destroy();
    mem?.destroy();
    el.remove();
  }
  return { el, close };
}
