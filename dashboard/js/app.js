// The dashboard shell: who am I, the navigation the caller's permissions
// allow, the live indicator, and a tiny history-API router. Every page is a
// module exporting render(root, ctx) that may return a cleanup function.
import { api, session, useGuestToken, setUnauthorizedHandler, ApiError } from './api.js';
import { h, clear, errorBox, fmtDuration, badge } from './ui.js';
import { startLive, stopLive, onLiveState, liveState, lastEventSeq } from './live.js';
import { labelTables } from './widgets.js';
import * as overview from './pages/overview.js';
import * as audit from './pages/audit.js';
import * as users from './pages/users.js';
import * as tokens from './pages/tokens.js';
import * as guestLinks from './pages/guest-links.js';
import * as login from './pages/login.js';
import * as guestHome from './pages/guest-home.js';
import * as containers from './pages/containers.js';
import * as nodes from './pages/nodes.js';
import * as stacks from './pages/stacks.js';
import * as deployments from './pages/deployments.js';
import * as terminal from './pages/terminal.js';
import * as recordings from './pages/recordings.js';
import * as settingsSecurity from './pages/settings-security.js';
import * as roles from './pages/roles.js';
import * as settings from './pages/settings.js';
import * as backups from './pages/backups.js';
import * as account from './pages/account.js';
import { images, volumes, networks } from './pages/engine.js';
import * as fleet from './pages/metrics.js';

// path, label, the permission that shows it, the page module.
const PAGES = [
  { path: '/overview', label: 'Overview', perm: 'authenticated', mod: overview },
  { path: '/nodes', label: 'Nodes', perm: 'nodes:read', mod: nodes },
  { path: '/containers', label: 'Containers', perm: 'containers:read', mod: containers },
  { path: '/stacks', label: 'Stacks', perm: 'stacks:read', mod: stacks },
  { path: '/deployments', label: 'Deployments', perm: 'apps:read', mod: deployments },
  { path: '/terminal', label: 'Terminal', perm: 'terminal:node', mod: terminal },
  { path: '/recordings', label: 'Recordings', perm: 'recordings:replay', mod: recordings },
  { path: '/backups', label: 'Backups', perm: 'backups:read', mod: backups },
  { path: '/audit', label: 'Audit', perm: 'audit:read', mod: audit },
  { path: '/users', label: 'Users', perm: 'users:admin', mod: users },
  { path: '/tokens', label: 'API tokens', perm: 'tokens:manage', mod: tokens },
  { path: '/guest-links', label: 'Guest links', perm: 'guest_links:admin', mod: guestLinks },
  { path: '/roles', label: 'Roles', perm: 'users:admin', mod: roles },
  { path: '/settings', label: 'Settings', perm: 'authenticated', mod: settings },
  { path: '/settings/security', label: 'Security', perm: 'authenticated', mod: settingsSecurity },
  { path: '/account', label: 'Account', perm: 'authenticated', mod: account },
  { path: '/images', label: 'Images', perm: 'images:read', mod: images },
  { path: '/volumes', label: 'Volumes', perm: 'volumes:read', mod: volumes },
  { path: '/networks', label: 'Networks', perm: 'networks:read', mod: networks },
  // Not /metrics: that is the core's Prometheus endpoint.
  { path: '/fleet', label: 'Metrics', perm: 'metrics:read', mod: fleet },
];

const root = document.getElementById('app');
labelTables(root);
let ctx = null;
let cleanup = null;
let countdownTimer = null;

function navigate(path, { replace = false } = {}) {
  if (location.pathname !== path) history[replace ? 'replaceState' : 'pushState'](null, '', path);
  route();
}
window.addEventListener('popstate', () => route());
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});

const LIVE_LABELS = { idle: 'Not connected', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline', polling: 'Polling' };
const LIVE_TITLES = {
  live: 'Connected to the live event stream.',
  reconnecting: 'The connection to the core dropped; reconnecting. Missed events are replayed on reconnection.',
  offline: 'The core cannot be reached; still retrying. Missed events are replayed on reconnection.',
  polling: 'Live events are not available from this server; pages refresh periodically.',
};
let liveEl = null;
// One listener for the app's lifetime; it updates whichever indicator the
// current shell shows. Only the label's text changes (fixed-width box).
onLiveState((s, seq) => {
  if (!liveEl) return;
  if (seq !== null && seq !== undefined) liveEl.dataset.lastSeq = String(seq);
  liveEl.title = `${LIVE_TITLES[s] || ''}${seq ? ` Last event #${seq}.` : ''}`;
  if (liveEl.dataset.state !== s) {
    liveEl.dataset.state = s;
    clear(liveEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), LIVE_LABELS[s] || s);
  }
});

function liveIndicator() {
  liveEl = h('span', { class: 'live', role: 'status', 'aria-live': 'polite', id: 'live-indicator' });
  const s = liveState();
  const seq = lastEventSeq();
  liveEl.dataset.state = s;
  if (seq !== null) liveEl.dataset.lastSeq = String(seq);
  liveEl.title = `${LIVE_TITLES[s] || ''}${seq ? ` Last event #${seq}.` : ''}`;
  return clear(liveEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), LIVE_LABELS[s] || s);
}

function shell(pages, active, { guest } = {}) {
  const nav = h('nav', { class: 'nav', id: 'main-nav', 'aria-label': 'Main' },
    pages.map((p) => h('a', { href: guest ? `${guest.base}${p.path}` : p.path, 'data-nav': '', class: p === active ? 'active' : '', 'aria-current': p === active ? 'page' : false }, p.label)));
  // Phones: the nav folds into this button (it names the current page) and
  // opens as a grid of every entry; each navigation draws it folded again.
  const toggle = h('button', { class: 'btn btn-ghost menu-toggle', id: 'menu-toggle', type: 'button', 'aria-controls': 'main-nav', 'aria-expanded': 'false' },
    h('span', { 'aria-hidden': 'true' }, '☰'), active ? active.label : 'Menu');
  toggle.addEventListener('click', () => toggle.setAttribute('aria-expanded', String(nav.classList.toggle('open'))));
  const who = guest
    ? h('div', { class: 'who' }, badge('Guest · read-only', 'accent'), h('span', { class: 'countdown', id: 'guest-countdown' }))
    : h('div', { class: 'who' }, h('span', { class: 'muted' }, ctx.me.name), badge(ctx.me.role, 'accent'),
      h('button', { class: 'btn btn-ghost', id: 'logout', onclick: logout }, 'Log out'));
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  clear(root,
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: guest ? guest.base : '/overview', 'data-nav': '', 'aria-label': 'Serverbox' }, h('img', { src: '/favicon.svg', alt: '', width: 22, height: 22 }), h('span', { class: 'brand-name' }, 'Serverbox')),
      liveIndicator(), toggle, who),
    h('div', { class: 'layout' }, nav, main));
  return main;
}

async function logout() {
  try { await api('POST', '/api/v1/auth/logout'); } catch { /* the session may already be gone */ }
  session.csrf = null;
  stopLive();
  ctx = null;
  navigate('/login');
}

function can(perm) {
  if (perm === 'authenticated') return true;
  return Boolean(ctx?.me?.permissions?.includes(perm));
}

async function route() {
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  const path = location.pathname;
  if (path.startsWith('/g/')) return guestRoute(path);
  if (path === '/login') {
    clear(root);
    cleanup = login.render(root, { navigate, onLoggedIn: async () => { ctx = null; navigate('/overview'); } });
    return;
  }
  if (!ctx) {
    try {
      const me = await api('GET', '/api/v1/me');
      ctx = { me, can, navigate, refresh: () => { ctx = null; route(); } };
      startLive();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return navigate('/login', { replace: true });
      clear(root, h('div', { class: 'center' }, errorBox(e)));
      return;
    }
  }
  // A role that requires 2FA the user has not set up: only that, until they do.
  const pages = PAGES.filter((p) => can(p.perm) && (!ctx.me.totp_setup_required || p.mod === settingsSecurity));
  if (path === '/' || path === '/index.html') return navigate('/overview', { replace: true });
  // The longest page path that holds this one: /settings/security is not /settings.
  const holding = (list) => list.filter((p) => path === p.path || path.startsWith(`${p.path}/`))
    .sort((x, y) => y.path.length - x.path.length)[0];
  const page = holding(pages);
  if (!page && ctx.me.totp_setup_required) return navigate('/settings/security', { replace: true });
  if (!page) {
    // A path the app does not know (or a page this caller may not open):
    // said in words, in the shell, with the way back.
    const hidden = holding(PAGES);
    const main = shell(pages, null);
    document.title = 'Not found · Serverbox';
    clear(main, h('section', { class: 'card not-found', id: 'not-found', role: 'alert' },
      h('h1', {}, hidden ? 'This page is not available to you' : 'Page not found'),
      h('p', {}, hidden
        ? `${hidden.label} needs a permission your role (${ctx.me.role}) does not have.`
        : ['There is no page at ', h('code', {}, path), '.']),
      h('p', {}, h('a', { href: '/overview', 'data-nav': '', class: 'btn btn-primary' }, 'Go to the overview'))));
    main.focus();
    return;
  }
  const main = shell(pages, page);
  document.title = `${page.label} · Serverbox`;
  cleanup = page.mod.render(main, ctx) || null;
}

// ---- guest mode: /g/<token>[/page] -------------------------------------------
const GUEST_PAGES = [
  { path: '', label: 'Overview', scope: null, mod: guestHome },
  { path: '/nodes', label: 'Nodes', scope: 'view:metrics', mod: nodes },
  { path: '/containers', label: 'Containers', scope: 'view:containers', mod: containers },
  { path: '/stacks', label: 'Stacks', scope: 'view:stacks', mod: stacks },
  { path: '/audit', label: 'Audit', scope: 'view:audit', mod: audit },
  { path: '/recordings', label: 'Recordings', scope: 'view:recordings', mod: recordings },
];
const scoped = (p, scopes) => !p.scope || [].concat(p.scope).some((s) => scopes.includes(s));

const REVOKE_CHECK_S = 10;

function expiredScreen(reason) {
  stopLive();
  clearInterval(countdownTimer);
  clear(root, h('div', { class: 'center' },
    h('section', { class: 'card expired', id: 'guest-expired', role: 'alert' },
      h('h1', {}, reason === 'revoked' ? 'This link is no longer valid' : 'This link has expired'),
      h('p', { class: 'muted' }, 'The access it granted has ended. Ask the person who shared it for a new link.'))));
}

async function guestRoute(path) {
  const m = path.match(/^\/g\/([^/]+)(\/.*)?$/);
  if (!m) return expiredScreen('revoked');
  const token = m[1];
  const sub = m[2] || '';
  const base = `/g/${token}`;
  useGuestToken(token);
  // The core's 401 does not say why; a link this close to its end expired.
  setUnauthorizedHandler(() => {
    const g = ctx?.guest?.token === token ? ctx.guest : null;
    expiredScreen(g && g.expiresAt - Date.now() < 5000 ? 'expired' : 'revoked');
  });
  if (!ctx || ctx.guest?.token !== token) {
    try {
      const grant = await api('GET', `/g/${encodeURIComponent(token)}`);
      ctx = { me: grant, guest: { token, base, scopes: grant.scopes || [], expiresAt: Date.parse(grant.expires_at) }, can: (p) => grant.permissions?.includes(p), navigate };
      // The stream carries the link's token (fetch streaming), and the core
      // sends only what the link's scopes allow.
      startLive();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return expiredScreen('revoked');
      clear(root, h('div', { class: 'center' }, errorBox(e)));
      return;
    }
  }
  const pages = GUEST_PAGES.filter((p) => scoped(p, ctx.guest.scopes));
  const page = pages.find((p) => p.path === sub || (p.path && sub.startsWith(`${p.path}/`))) || pages[0];
  if (page.path !== sub && !sub.startsWith(`${page.path}/`)) history.replaceState(null, '', base + page.path);
  const main = shell(pages, page, { guest: ctx.guest });
  document.title = `${page.label} · Serverbox guest`;
  const tick = () => {
    const left = ctx.guest.expiresAt - Date.now();
    if (left <= 0) return expiredScreen('expired');
    const el = document.getElementById('guest-countdown');
    if (el) el.textContent = `Expires in ${fmtDuration(left)}`;
  };
  // A revoked link shows as such within REVOKE_CHECK_S even on an idle page:
  // the check's 401 goes to the unauthorized handler.
  let ticks = 0;
  const check = () => { if (++ticks % REVOKE_CHECK_S === 0) api('GET', '/api/v1/me').catch(() => {}); };
  clearInterval(countdownTimer);
  tick();
  countdownTimer = setInterval(() => { tick(); check(); }, 1000);
  cleanup = page.mod.render(main, { ...ctx, readOnly: true }) || null;
}

setUnauthorizedHandler((err) => {
  if (location.pathname.startsWith('/g/') || location.pathname === '/login') return;
  ctx = null;
  stopLive();
  navigate('/login', { replace: true });
});

route();
