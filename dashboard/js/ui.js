// Small DOM helpers. Text always goes in as text (never innerHTML), so data
// from the API cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A readable error box for an ApiError (or any Error).
export function errorBox(err) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, err?.message || String(err));
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtDuration(ms) {
  if (ms <= 0) return '0s';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function badge(text, kind = 'neutral') {
  return h('span', { class: `badge badge-${kind}` }, text);
}

export function outcomeBadge(outcome) {
  return badge(outcome, outcome === 'success' ? 'ok' : outcome === 'denied' ? 'warn' : 'err');
}

// A modal confirmation built on <dialog>; resolves true when confirmed.
export function confirmDialog(title, text, confirmLabel = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title' }, title),
      h('p', {}, text),
      h('div', { class: 'row end' },
        h('button', { class: 'btn', value: 'cancel', onclick: () => dlg.close('cancel') }, 'Cancel'),
        h('button', { class: danger ? 'btn btn-danger' : 'btn btn-primary', onclick: () => dlg.close('ok') }, confirmLabel)));
    dlg.addEventListener('close', () => { dlg.remove(); resolve(dlg.returnValue === 'ok'); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) { const old = button.textContent; button.textContent = 'Copied'; setTimeout(() => { button.textContent = old; }, 1500); }
  } catch {
    window.prompt('Copy this:', text);
  }
}

// Shows a transient status message in the page's live region.
export function toast(text, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) { box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' }); document.body.append(box); }
  const t = h('div', { class: `toast toast-${kind}` }, text);
  box.append(t);
  setTimeout(() => t.remove(), 4000);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function fmtBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  let v = Number(n), i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[i]}`;
}
export function fmtRate(n) {
  return n === null || n === undefined || !Number.isFinite(Number(n)) ? '—' : `${fmtBytes(n)}/s`;
}
export function fmtPct(n) {
  return n === null || n === undefined || !Number.isFinite(Number(n)) ? '—' : `${Number(n).toFixed(1)}%`;
}

// A fixed-size horizontal gauge (0..100) with its figure; update(pct, text).
// The bar's width is set through the CSSOM, which the strict CSP allows.
export function gauge(id, label) {
  const fill = h('span', { class: 'gauge-fill' });
  const text = h('span', { class: 'gauge-text' }, '—');
  const el = h('div', { class: 'gauge', id, role: 'meter', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100' },
    h('span', { class: 'gauge-bar', 'aria-hidden': 'true' }, fill), text);
  return {
    el,
    update(pct, label2, title) {
      el.title = title || '';
      const ok = pct !== null && pct !== undefined && Number.isFinite(Number(pct));
      const p = ok ? Math.max(0, Math.min(100, Number(pct))) : 0;
      fill.style.width = `${p}%`;
      fill.className = `gauge-fill${p >= 90 ? ' hot' : p >= 70 ? ' warm' : ''}`;
      text.textContent = label2 ?? (ok ? fmtPct(pct) : '—');
      if (ok) el.setAttribute('aria-valuenow', p.toFixed(1)); else el.removeAttribute('aria-valuenow');
      el.dataset.value = ok ? p.toFixed(2) : '';
    },
  };
}
