// The live connection: one EventSource on /api/v1/events shared by every
// page. EventSource reconnects by itself after a network drop and sends
// Last-Event-ID, so the core replays what was missed. When the stream is not
// available (a core without it, or a guest whose link cannot open it), pages
// fall back to polling and the indicator says so.

const listeners = new Set();
const stateListeners = new Set();
let source = null;
let state = 'idle'; // idle | connecting | live | reconnecting | polling
let lastSeq = null;

function setState(s) {
  if (s === state) return;
  state = s;
  for (const fn of stateListeners) fn(state);
}

export function liveState() { return state; }
export function onLiveState(fn) { stateListeners.add(fn); fn(state); return () => stateListeners.delete(fn); }
// fn(event) for every event body; returns an unsubscribe function.
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function dispatch(e) {
  let body;
  try { body = JSON.parse(e.data); } catch { return; }
  if (e.lastEventId) lastSeq = Number(e.lastEventId);
  for (const fn of listeners) fn(body, e.type);
}

// Event types the overview shows; a generic 'message' covers untyped events.
// EventSource has no wildcard listener, so the types are named here (from
// docs/events.md and the docker/ sources); pages also poll slowly as a
// safety net for any type missing from this list.
const CONTAINER_ACTIONS = ['create', 'start', 'stop', 'restart', 'kill', 'pause', 'unpause', 'remove', 'exec'];
const TYPES = ['message', 'auth.login', 'auth.logout', 'user.created', 'user.updated', 'user.deleted',
  'user.password_changed', 'token.created', 'token.revoked', 'guest_link.created', 'guest_link.revoked',
  'guest.request', 'annotation.created', 'access.denied',
  'node.registered', 'node.updated', 'node.deleted', 'node.online', 'node.offline',
  'container.created', 'container.started', 'container.died', 'container.destroyed', 'container.paused',
  'container.unpaused', 'container.oom', 'container.health_status', 'container.observed',
  ...CONTAINER_ACTIONS.map((a) => `container.${a}_requested`),
  ...['image.pull', 'image.remove', 'image.prune', 'volume.create', 'volume.remove', 'volume.prune',
    'network.create', 'network.remove', 'network.prune'].map((t) => `${t}_requested`)];

export function startLive({ enabled = true } = {}) {
  stopLive();
  if (!enabled || typeof EventSource === 'undefined') { setState('polling'); return; }
  setState('connecting');
  const url = lastSeq !== null ? `/api/v1/events?last_event_id=${lastSeq}` : '/api/v1/events';
  source = new EventSource(url, { withCredentials: true });
  source.addEventListener('open', () => setState('live'));
  source.addEventListener('error', () => {
    // CONNECTING: the browser retries by itself (network drop). CLOSED: the
    // server refused the stream (404, 401…): poll instead.
    if (!source) return;
    if (source.readyState === EventSource.CLOSED) { source.close(); source = null; setState('polling'); }
    else setState('reconnecting');
  });
  for (const t of TYPES) source.addEventListener(t, dispatch);
  source.addEventListener('resync', (e) => {
    try { lastSeq = JSON.parse(e.data).resume_after; } catch { /* keep */ }
    startLive();
  });
  source.addEventListener('closed', () => { stopLive(); setState('polling'); });
}

export function stopLive() {
  if (source) { source.close(); source = null; }
  setState('idle');
}
