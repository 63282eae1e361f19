// Metric points as the dashboard uses them, from either source:
//   - GET /api/v1/nodes/{id}/metrics `points`: {t (ms), cpu_pct, mem_used,
//     mem_total, disk_used, disk_total, disk_read_bps, disk_write_bps,
//     net_rx_bps, net_tx_bps, …} (store/metrics.c);
//   - a collector sample (the series' `latest`, and the live `metrics`
//     topic): {ts, cpu: {total}, mem: {used, total}, disk_total: {used,
//     total}, io_total: {read_bps, write_bps}, net_total: {rx_bps, tx_bps}}
//     (docs/collector.md).
const num = (v) => (v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v));

export function toPoint(x) {
  if (!x || typeof x !== 'object') return null;
  if ('t' in x) {
    return { t: num(x.t), cpu_pct: num(x.cpu_pct), mem_used: num(x.mem_used), mem_total: num(x.mem_total),
      disk_used: num(x.disk_used), disk_total: num(x.disk_total), disk_read_bps: num(x.disk_read_bps),
      disk_write_bps: num(x.disk_write_bps), net_rx_bps: num(x.net_rx_bps), net_tx_bps: num(x.net_tx_bps) };
  }
  if ('ts' in x) {
    return { t: num(x.ts), cpu_pct: num(x.cpu?.total), mem_used: num(x.mem?.used), mem_total: num(x.mem?.total),
      disk_used: num(x.disk_total?.used), disk_total: num(x.disk_total?.total),
      disk_read_bps: num(x.io_total?.read_bps), disk_write_bps: num(x.io_total?.write_bps),
      net_rx_bps: num(x.net_total?.rx_bps), net_tx_bps: num(x.net_total?.tx_bps) };
  }
  return null;
}

// A live `metrics` message → {nodeId, point} (null when it is not a node
// sample). body is the whole ephemeral message {topic, type, data, at}.
export function liveNodePoint(body) {
  if (!body || typeof body !== 'object') return null;
  const data = body.data && typeof body.data === 'object' ? body.data : body;
  const m = typeof body.topic === 'string' && body.topic.match(/^metrics\/node\/([^/]+)$/);
  const nodeId = (m && m[1]) || data.node_id || null;
  const sample = data.sample || data.latest || data;
  const point = toPoint(sample);
  return nodeId && point && point.t ? { nodeId, point } : null;
}

export const memPct = (p) => (p && p.mem_used !== null && p.mem_total ? (100 * p.mem_used) / p.mem_total : null);
export const diskPct = (p) => (p && p.disk_used !== null && p.disk_total ? (100 * p.disk_used) / p.disk_total : null);
