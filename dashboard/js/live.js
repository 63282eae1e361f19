// The live connection to GET /api/v1/events, read with fetch streaming
// rather than EventSource, for three reasons: every event arrives whatever
// its type (EventSource needs one listener per named type, so new types
// were silently missed), a guest link's bearer token can be sent (guests
// are live too), and the reconnection is ours to see and show.
//
// One shared stream carries every logged event the caller may read (no
// ?topics: the overview lists them all; pages filter by family or type).
// After a network drop or a core restart it reconnects with backoff and
// sends Last-Event-ID, so the core replays what happened meanwhile, without
// gap or duplicate. Pages that want ephemeral data (metrics) open their own
// stream with subscribe(topics): the core sends ephemeral data only to
// streams whose ?topics= name it.
//
// Indicator states: connecting → live; after a drop reconnecting, and
// offline once the core has been unreachable for OFFLINE_AFTER_MS (it keeps
// retrying); polling when the core offers no event stream at all.
import { notifyUnauthorized, guestAuthorization } from './api.js';

const RETRY_MS = [500, 1000, 2000, 3000, 5000];
const OFFLINE_AFTER_MS = 6000;
// The core writes a heartbeat comment on idle streams (15 s by default);
// nothing at all for this long means the connection is dead.
const STALL_MS = 45000;

// ---- one stream -------------------------------------------------------------

// SSE text → messages {id, event, data}. Fed chunks of text.
function sseParser(onMessage) {
  let buf = '';
  let id = null, event = '', data = [];
  return (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
      if (line === '') {
        if (data.length) onMessage({ id, event: event || 'message', data: data.join('\n') });
        id = null; event = ''; data = [];
        continue;
      }
      if (line[0] === ':') continue; // heartbeat comment
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id') id = value;
    }
  };
}

// A self-reconnecting stream. opts: {topics, resume, onMessage(msg), onState(s)}.
// Returns {close()}.
function openStream({ topics = null, resume = false, onMessage, onState }) {
  let closed = false;
  let ctrl = null;
  let lastId = null;
  let timer = null;
  let wake = null;

  const sleep = (ms) => new Promise((r) => { wake = r; timer = setTimeout(r, ms); });
  // The browser knows when its network is gone: the stream is dropped and
  // the state is offline at once, and it retries as soon as the network
  // is back.
  const isOffline = () => navigator.onLine === false;
  const onOnline = () => { if (wake) { clearTimeout(timer); wake(); } };
  const onOffline = () => { if (ctrl) ctrl.abort(); onState('offline'); };
  window.addEventListener('online', onOnline);
  window.addEventListener('offline', onOffline);

  async function run() {
    let failures = 0;
    let downSince = null;
    let everLive = false;
    while (!closed) {
      const down = isOffline() || (downSince !== null && Date.now() - downSince >= OFFLINE_AFTER_MS);
      onState(!everLive && failures === 0 && !isOffline() ? 'connecting' : down ? 'offline' : 'reconnecting');
      ctrl = new AbortController();
      const headers = { Accept: 'text/event-stream' };
      if (resume && lastId !== null) headers['Last-Event-ID'] = lastId;
      const auth = guestAuthorization();
      if (auth) headers.Authorization = auth;
      const url = topics ? `/api/v1/events?topics=${encodeURIComponent(topics)}` : '/api/v1/events';
      let res = null;
      try {
        res = await fetch(url, { headers, credentials: 'same-origin', cache: 'no-store', signal: ctrl.signal });
      } catch {
        res = null; // the core is unreachable (or we were closed)
      }
      if (closed) return;
      if (res && res.status === 401) {
        onState('offline');
        notifyUnauthorized();
        return;
      }
      if (res && (res.status === 404 || res.status === 403)) {
        // No event stream offered to this caller: pages poll.
        onState('polling');
        return;
      }
      if (res && res.ok && res.body) {
        everLive = true;
        failures = 0;
        downSince = null;
        onState('live');
        const askedFrom = lastId;
        const ended = await read(res.body);
        if (closed) return;
        // Resume at once from the seq the core named, unless that made no
        // progress (then back off like any other drop).
        if (ended === 'resync' && lastId !== askedFrom) continue;
      } else if (res && res.body) {
        res.body.cancel().catch(() => {}); // a 5xx: free the connection
      }
      // A drop: the stream ended (core stopping, connection lost) or the
      // core could not be reached or answered 5xx. Retry with backoff.
      if (downSince === null) downSince = Date.now();
      const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures++;
      onState(isOffline() || Date.now() - downSince >= OFFLINE_AFTER_MS ? 'offline' : 'reconnecting');
      await sleep(delay);
    }
  }

  // Reads one response to its end; returns why it ended.
  async function read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let why = 'eof';
    let stall = null;
    const arm = () => { clearTimeout(stall); stall = setTimeout(() => { why = 'stalled'; ctrl.abort(); }, STALL_MS); };
    const parse = sseParser((m) => {
      if (m.id !== null && m.id !== '') lastId = m.id;
      if (m.event === 'resync') {
        // The core cut us off (too slow, or too much to replay): resume
        // after the seq it names.
        try { lastId = String(JSON.parse(m.data).resume_after); } catch { /* keep the id */ }
        why = 'resync';
        return;
      }
      if (m.event === 'closed') { why = 'closed'; return; }
      onMessage(m);
    });
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        parse(decoder.decode(value, { stream: true }));
      }
    } catch {
      if (why === 'eof') why = 'error';
    } finally {
      clearTimeout(stall);
    }
    return why;
  }

  run();
  return {
    close() {
      closed = true;
      window.removeEventListener('online', onOnline);
      window.removeEventListener('offline', onOffline);
      clearTimeout(timer);
      if (wake) wake();
      if (ctrl) ctrl.abort();
    },
    lastId: () => lastId,
  };
}

// ---- the shared stream and the indicator ---------------------------------------

const listeners = new Set();
const stateListeners = new Set();
let main = null;
let state = 'idle'; // idle | connecting | live | reconnecting | offline | polling
let lastSeq = null;

function setState(s) {
  if (s === state) return;
  state = s;
  for (const fn of stateListeners) fn(state, lastSeq);
}

export function liveState() { return state; }
export function lastEventSeq() { return lastSeq; }
// fn(state, last seq received) on every change of either.
export function onLiveState(fn) { stateListeners.add(fn); fn(state, lastSeq); return () => stateListeners.delete(fn); }
// fn(event body, type) for every logged event; returns an unsubscribe function.
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export function startLive({ enabled = true } = {}) {
  stopLive();
  if (!enabled || typeof ReadableStream === 'undefined') { setState('polling'); return; }
  main = openStream({
    resume: true,
    onState: setState,
    onMessage: (m) => {
      let body;
      try { body = JSON.parse(m.data); } catch { return; }
      if (m.id) {
        lastSeq = Number(m.id);
        for (const fn of stateListeners) fn(state, lastSeq);
      }
      for (const fn of listeners) fn(body, m.event);
    },
  });
}

export function stopLive() {
  if (main) { main.close(); main = null; }
  setState('idle');
}

// Ephemeral data for one page: a stream of its own on `topics` (e.g.
// "metrics/node/<id>"). fn(message, type) gets each message as sent: for
// ephemeral data {topic, type, data, at}. Returns the unsubscribe function.
export function subscribe(topics, fn) {
  const s = openStream({
    topics,
    resume: false,
    onState: () => {},
    onMessage: (m) => {
      let body;
      try { body = JSON.parse(m.data); } catch { return; }
      fn(body, m.event);
    },
  });
  return () => s.close();
}
