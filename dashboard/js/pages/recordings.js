// Terminal recordings (asciicast v2, kept by the core): the list the
// caller's scope allows, each with its SHA-256 (the one in the audit chain's
// terminal.closed event) and a replay in asciinema-player. Guests with the
// view:recordings scope see this page and nothing else.
import { api, guestAuthorization } from '../api.js';
import { h, clear, errorBox, fmtTime, fmtBytes, badge } from '../ui.js';

let playerModule = null;
async function loadPlayer() {
  if (!playerModule) {
    playerModule = import('../../vendor/asciinema.js').then((m) => {
      if (!document.querySelector('link[data-asciinema]')) document.head.append(h('link', { rel: 'stylesheet', href: m.cssHref, 'data-asciinema': '' }));
      return m.default;
    });
    playerModule.catch(() => { playerModule = null; });
  }
  return playerModule;
}

export function render(root) {
  const err = h('div');
  const tbody = h('tbody', { id: 'recording-rows' });
  const stage = h('section', { class: 'card', id: 'recording-player', hidden: true });
  clear(root, h('h1', {}, 'Terminal recordings'), err, stage,
    h('section', { class: 'card' },
      h('p', { class: 'muted small' }, 'Every terminal session is recorded. The SHA-256 of each file is in its terminal.closed event, so the audit chain vouches for it.'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'Session'), h('th', {}, 'By'), h('th', {}, 'Opened'), h('th', {}, 'Closed'),
          h('th', {}, 'Size'), h('th', { class: 'hide-sm' }, 'SHA-256'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody))));
  let player = null;
  let disposed = false;

  async function replay(rec) {
    clear(err);
    try {
      const headers = {};
      const auth = guestAuthorization();
      if (auth) headers.Authorization = auth;
      const res = await fetch(`/api/v1/recordings/${encodeURIComponent(rec.id)}`, { headers, credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw new Error(`the recording cannot be downloaded (HTTP ${res.status})`);
      const text = await res.text();
      const AsciinemaPlayer = await loadPlayer();
      if (disposed) return;
      player?.dispose?.();
      const box = h('div', { class: 'player-box', id: 'player-box' });
      clear(stage, h('div', { class: 'row between' }, h('h2', {}, `${rec.node_name || rec.node_id} · ${rec.session}`),
        h('button', { class: 'btn btn-small', type: 'button', onclick: () => { player?.dispose?.(); player = null; stage.hidden = true; } }, 'Close')),
      h('p', { class: 'muted small' }, `${fmtTime(rec.opened_at)} – ${fmtTime(rec.closed_at)} · by ${rec.opened_by || '—'}`), box);
      stage.hidden = false;
      stage.dataset.recording = rec.id;
      player = AsciinemaPlayer.create({ data: text }, box, { fit: 'width', idleTimeLimit: 2, preload: true });
      window.__sbxPlayer = player;
    } catch (e) { clear(err, errorBox(e)); }
  }

  (async () => {
    try {
      const r = await api('GET', '/api/v1/recordings');
      if (disposed) return;
      clear(tbody, r.items.length ? r.items.map((rec) => h('tr', { dataset: { id: rec.id } },
        h('td', {}, rec.node_name || rec.node_id),
        h('td', {}, h('code', {}, rec.session)),
        h('td', {}, rec.opened_by || '—'),
        h('td', { class: 'nowrap' }, fmtTime(rec.opened_at)),
        h('td', { class: 'nowrap' }, fmtTime(rec.closed_at), ' ', badge(rec.reason, 'neutral')),
        h('td', { class: 'nowrap' }, fmtBytes(rec.bytes), rec.truncated ? badge('capped', 'warn') : null),
        h('td', { class: 'hide-sm' }, h('code', { class: 'small', title: rec.sha256 }, `${rec.sha256.slice(0, 16)}…`)),
        h('td', { class: 'actions' }, rec.available
          ? h('button', { class: 'btn btn-small', type: 'button', onclick: () => replay(rec) }, 'Replay')
          : badge('removed by retention', 'warn')))) : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No recordings yet.')));
    } catch (e) { clear(err, errorBox(e)); }
  })();

  return () => { disposed = true; player?.dispose?.(); };
}
