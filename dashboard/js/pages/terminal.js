// Terminals: tabs of node shells (tmux sessions on the node, see
// core/src/terminal/README.md) drawn by xterm.js. The core decides
// everything: a tab is POST /api/v1/nodes/{id}/terminals (which opens or
// re-attaches the tmux session), its output is the SSE stream of base64
// chunks with byte offsets, keystrokes go to …/input, the size to …/resize.
// The open tabs are remembered in localStorage, so closing the page and
// opening it again re-attaches the same tmux sessions (tmux redraws them).
// A dropped stream resumes from the last offset it had; a terminal the core
// no longer has (it restarted, or detached an idle one) is re-attached.
import { api, session } from '../api.js';
import { h, clear, errorBox, toast, confirmDialog } from '../ui.js';

const TABS_KEY = 'sbx.terminal.tabs';
const SESSION_RE = /^[A-Za-z0-9_-]{1,32}$/;

// ---- loading xterm under the strict CSP -------------------------------------
// xterm's DOM renderer puts its computed CSS in <style> elements, which
// `style-src 'self'` refuses. This page hands it inert stand-ins whose text
// goes into constructed style sheets (CSSOM, which the policy allows).
let xtermModule = null;
function cspSafeStyles() {
  if (Document.prototype.createElement.sbxPatched) return;
  const create = Document.prototype.createElement;
  const patched = function createElement(tag, opts) {
    if (String(tag).toLowerCase() !== 'style') return create.call(this, tag, opts);
    const el = create.call(this, 'template');
    el.dataset.cspStyle = '';
    const sheet = new CSSStyleSheet();
    let css = '';
    Object.defineProperty(el, 'textContent', {
      get: () => css,
      set: (v) => {
        css = String(v ?? '');
        sheet.replaceSync(css);
        if (!document.adoptedStyleSheets.includes(sheet)) document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      },
    });
    const remove = el.remove.bind(el);
    el.remove = () => { document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet); remove(); };
    return el;
  };
  patched.sbxPatched = true;
  Document.prototype.createElement = patched;
}
async function loadXterm() {
  if (!xtermModule) {
    cspSafeStyles();
    xtermModule = import('../../vendor/xterm.js').then((m) => {
      if (!document.querySelector('link[data-xterm]')) document.head.append(h('link', { rel: 'stylesheet', href: m.cssHref, 'data-xterm': '' }));
      return m;
    });
    xtermModule.catch(() => { xtermModule = null; });
  }
  return xtermModule;
}

function savedTabs() {
  try { return JSON.parse(localStorage.getItem(TABS_KEY) || '[]').filter((t) => t && t.node && SESSION_RE.test(t.session)); } catch { return []; }
}
function saveTabs(tabs) {
  // Container consoles are not kept: an exec ends with its connection.
  localStorage.setItem(TABS_KEY, JSON.stringify(tabs.filter((t) => !t.container).map((t) => ({ node: t.node, session: t.session, nodeName: t.nodeName }))));
}

// For the browser tests and for debugging: the xterm of each open tab.
window.__sbxTerminals = window.__sbxTerminals || {};

export function render(root, ctx) {
  const err = h('div');
  const nodeSel = h('select', { id: 't-node', 'aria-label': 'Node' });
  const sessionIn = h('input', { id: 't-session', value: 'main', maxlength: 32, pattern: '[A-Za-z0-9_\\-]{1,32}', 'aria-label': 'tmux session', title: 'A-Z a-z 0-9 _ - (1 to 32)' });
  const form = h('form', { class: 'inline-form', id: 't-open' },
    h('div', { class: 'field' }, h('label', { for: 't-node' }, 'Node'), nodeSel),
    h('div', { class: 'field' }, h('label', { for: 't-session' }, 'tmux session'), sessionIn),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Open')));
  const tabBar = h('div', { class: 'term-tabs', role: 'tablist', id: 'term-tabs' });
  const panes = h('div', { class: 'term-panes', id: 'term-panes' });
  const empty = h('p', { class: 'muted', id: 'term-empty' }, 'No terminal open. Pick a node and a tmux session name; the session survives closing this page.');
  clear(root, h('h1', {}, 'Terminal'), err, h('section', { class: 'card' }, form), tabBar, empty, panes);

  const tabs = [];
  let active = null;
  let disposed = false;
  const params = new URLSearchParams(location.search);

  function showEmpty() { empty.hidden = tabs.length > 0; }

  function activate(tab) {
    active = tab;
    for (const t of tabs) {
      const on = t === tab;
      t.tabEl.setAttribute('aria-selected', String(on));
      t.tabEl.classList.toggle('active', on);
      t.pane.hidden = !on;
    }
    if (tab) { tab.fit(); tab.term.focus(); }
  }

  // container: a console in that container (docker exec) instead of tmux.
  async function openTab(nodeId, sessionName, nodeName, container) {
    const existing = tabs.find((t) => t.node === nodeId && t.session === sessionName);
    if (existing) { activate(existing); return existing; }
    const { Terminal, FitAddon } = await loadXterm();
    if (disposed) return null;
    const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, convertEol: false,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', theme: { background: '#0b0b12' } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    const stateEl = h('span', { class: 'term-state', dataset: { state: 'connecting' } }, 'connecting…');
    const label = `${nodeName || nodeId.slice(0, 8)} · ${sessionName}`;
    const closeBtn = h('button', { class: 'btn btn-ghost btn-small', type: 'button', title: 'Detach (the tmux session stays)', 'aria-label': `Detach ${label}` }, '×');
    const tabEl = h('div', { class: 'term-tab', role: 'tab', tabindex: '0', dataset: { node: nodeId, session: sessionName } },
      h('span', { class: 'term-tab-label' }, label), stateEl, closeBtn);
    const screen = h('div', { class: 'term-screen' });
    const copyBtn = h('button', { class: 'btn btn-small', type: 'button' }, 'Copy selection');
    const pasteBtn = h('button', { class: 'btn btn-small', type: 'button' }, 'Paste');
    const killBtn = h('button', { class: 'btn btn-small btn-danger', type: 'button', hidden: Boolean(container) }, 'End tmux session');
    const pane = h('div', { class: 'term-pane', role: 'tabpanel', dataset: { node: nodeId, session: sessionName } },
      h('div', { class: 'row between' }, container
        ? h('span', { class: 'muted small' }, 'console (docker exec) in container ', h('code', {}, container.slice(0, 12)), ' on ', nodeName || nodeId)
        : h('span', { class: 'muted small' }, 'tmux session ', h('code', {}, sessionName), ' on ', nodeName || nodeId),
        h('div', { class: 'row' }, copyBtn, pasteBtn, killBtn)),
      screen);
    tabBar.append(tabEl);
    panes.append(pane);
    term.open(screen);
    const tab = { node: nodeId, session: sessionName, nodeName, container, term, tabEl, pane, id: null, offset: 0, es: null, closed: false,
      fit: () => { try { fit.fit(); } catch { /* hidden */ } } };
    tabs.push(tab);
    saveTabs(tabs);
    showEmpty();
    activate(tab);

    const setState = (s, text) => { stateEl.dataset.state = s; stateEl.textContent = text; tabEl.dataset.state = s; };

    // input: in order, one request at a time, batching what arrives meanwhile
    const enc = new TextEncoder();
    let queue = [];
    let sending = false;
    async function flush() {
      if (sending || !queue.length || !tab.id) return;
      sending = true;
      const parts = queue;
      queue = [];
      const len = parts.reduce((n, p) => n + p.length, 0);
      const body = new Uint8Array(len);
      let at = 0;
      for (const p of parts) { body.set(p, at); at += p.length; }
      try {
        const res = await fetch(`/api/v1/terminals/${tab.id}/input`, { method: 'POST', credentials: 'same-origin',
          headers: { 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': session.csrf || '' }, body });
        if (res.status === 429) { queue = [body, ...queue]; await new Promise((r) => setTimeout(r, 500)); }
        else if (!res.ok && res.status !== 404) toast(`input not sent (HTTP ${res.status})`, 'err');
      } catch { queue = [body, ...queue]; await new Promise((r) => setTimeout(r, 500)); }
      sending = false;
      flush();
    }
    // Output replayed from the ring (what an earlier page already saw) holds
    // old terminal queries (tmux asks the size and attributes when it
    // attaches); xterm's answers to those must not reach the shell.
    let replaying = 0;
    term.onData((d) => { if (replaying) return; queue.push(enc.encode(d)); flush(); });
    term.onBinary((d) => { if (replaying) return; queue.push(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)); flush(); });
    let resizeTimer = null;
    term.onResize(({ cols, rows }) => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (tab.id) api('POST', `/api/v1/terminals/${tab.id}/resize`, { cols, rows }).catch(() => {}); }, 150);
    });
    copyBtn.addEventListener('click', async () => {
      const sel = term.getSelection();
      if (!sel) return toast('select text in the terminal first', 'warn');
      try { await navigator.clipboard.writeText(sel); toast('Copied'); } catch { window.prompt('Copy this:', sel); }
    });
    pasteBtn.addEventListener('click', async () => {
      try { const t = await navigator.clipboard.readText(); if (t) term.paste(t); } catch { toast('the browser did not allow reading the clipboard; use Ctrl+Shift+V', 'warn'); }
      term.focus();
    });

    // output: our own reconnect loop, so the indicator tells the truth
    const dec = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    let retry = 0;
    async function attach() {
      if (tab.closed || disposed) return;
      setState('connecting', tab.id ? 're-attaching…' : 'connecting…');
      try {
        const r = container
          ? await api('POST', `/api/v1/nodes/${encodeURIComponent(nodeId)}/containers/${encodeURIComponent(container)}/console`, { cols: term.cols, rows: term.rows })
          : await api('POST', `/api/v1/nodes/${encodeURIComponent(nodeId)}/terminals`, { session: sessionName, cols: term.cols, rows: term.rows });
        if (r.id !== tab.id) { tab.id = r.id; tab.offset = r.start_offset || 0; term.reset(); }
        tab.catchUp = r.end_offset || 0;
        tabEl.dataset.terminal = r.id;
        connect();
        flush();
      } catch (e) {
        setState('error', e.status === 409 || e.status === 422 || e.status === 403 || e.status === 404 ? 'failed' : 'reconnecting…');
        if (e.status === 409 || e.status === 422 || e.status === 403 || e.status === 404) { clear(err, errorBox(e)); return; }
        setTimeout(attach, Math.min(10000, 500 * 2 ** retry++));
      }
    }
    function connect() {
      if (tab.closed || disposed) return;
      const es = new EventSource(`/api/v1/terminals/${tab.id}/output?offset=${tab.offset}`);
      tab.es = es;
      es.onopen = () => { retry = 0; setState('live', 'live'); };
      es.addEventListener('output', (ev) => {
        const d = JSON.parse(ev.data);
        const bytes = dec(d.data);
        if (d.offset + bytes.length <= tab.offset) return; // already shown
        const chunk = d.offset < tab.offset ? bytes.subarray(tab.offset - d.offset) : bytes;
        if (d.offset < tab.catchUp) {
          replaying++;
          term.write(chunk, () => { replaying--; });
        } else {
          term.write(chunk);
        }
        tab.offset = d.offset + bytes.length;
        tabEl.dataset.offset = String(tab.offset);
      });
      es.addEventListener('gap', (ev) => { const d = JSON.parse(ev.data); tab.offset = d.offset; });
      es.addEventListener('end', () => {
        es.close();
        tab.es = null;
        if (container) { setState('ended', 'ended'); return; } // the shell is gone; Detach closes the tab
        if (!tab.closed) { setState('reconnecting', 'reconnecting…'); setTimeout(attach, 300); } });
      es.onerror = async () => {
        es.close();
        tab.es = null;
        if (tab.closed || disposed) return;
        setState('reconnecting', 'reconnecting…');
        // The core may have restarted (the terminal is gone: re-attach) or be
        // briefly unreachable (resume from our offset).
        await new Promise((r) => setTimeout(r, Math.min(10000, 300 * 2 ** retry++)));
        try { await api('GET', `/api/v1/terminals/${tab.id}`); connect(); } catch { attach(); }
      };
    }

    async function closeTab(kill) {
      tab.closed = true;
      tab.es?.close();
      if (tab.id) api('DELETE', `/api/v1/terminals/${tab.id}${kill ? '?kill=1' : ''}`).catch(() => {});
      term.dispose();
      delete window.__sbxTerminals[`${nodeId}/${sessionName}`];
      tabEl.remove();
      pane.remove();
      tabs.splice(tabs.indexOf(tab), 1);
      saveTabs(tabs);
      showEmpty();
      if (active === tab) activate(tabs[tabs.length - 1] || null);
    }
    closeBtn.addEventListener('click', (e) => { e.stopPropagation(); closeTab(false); });
    killBtn.addEventListener('click', async () => {
      if (await confirmDialog('End this tmux session?', `The shell and everything running in "${sessionName}" on the node stop.`, 'End session')) closeTab(true);
    });
    tabEl.addEventListener('click', () => activate(tab));
    tabEl.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); activate(tab); } });
    tab.dispose = () => { tab.closed = true; tab.es?.close(); term.dispose(); delete window.__sbxTerminals[`${nodeId}/${sessionName}`]; };
    window.__sbxTerminals[`${nodeId}/${sessionName}`] = term;
    tab.fit();
    attach();
    return tab;
  }

  const onWindowResize = () => active?.fit();
  window.addEventListener('resize', onWindowResize);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clear(err);
    const s = sessionIn.value.trim();
    if (!SESSION_RE.test(s)) { clear(err, errorBox(new Error('a session name is 1 to 32 of A-Z a-z 0-9 _ -'))); return; }
    const opt = nodeSel.selectedOptions[0];
    if (!opt) return;
    openTab(opt.value, s, opt.textContent).catch((x) => clear(err, errorBox(x)));
  });

  (async () => {
    try {
      const r = await api('GET', '/api/v1/nodes');
      if (disposed) return;
      const items = r.items || r.nodes || [];
      clear(nodeSel, items.map((n) => h('option', { value: n.id }, n.name)));
      const want = params.get('node');
      if (want) nodeSel.value = want;
    } catch (e) { clear(err, errorBox(e)); }
    for (const t of savedTabs()) await openTab(t.node, t.session, t.nodeName).catch((x) => clear(err, errorBox(x)));
    const want = params.get('node');
    const ctr = params.get('container');
    if (want && ctr && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(ctr)) {
      const nm = params.get('name') || ctr.slice(0, 12);
      await openTab(want, `ct-${ctr.slice(0, 12)}`, `${nm} @ ${want === 'local' ? 'local' : ([...nodeSel.options].find((o) => o.value === want)?.textContent || want.slice(0, 8))}`, ctr)
        .catch((x) => clear(err, errorBox(x)));
    }
    if (want && params.get('session') && SESSION_RE.test(params.get('session'))) {
      const opt = [...nodeSel.options].find((o) => o.value === want);
      await openTab(want, params.get('session'), opt?.textContent).catch((x) => clear(err, errorBox(x)));
    }
    showEmpty();
  })();

  return () => {
    disposed = true;
    window.removeEventListener('resize', onWindowResize);
    for (const t of tabs) t.dispose(); // detach nothing: the tmux sessions and the core's terminals stay
  };
}
