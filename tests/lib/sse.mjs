// A small Server-Sent Events client for the tests: parses the stream into
// {id, event, data} messages and counts heartbeat comments.
// The bearer token streams use when the call names none (setDefaultToken).
let defaultToken;
export function setDefaultToken(t) { defaultToken = t; }

export function openSse(base, path, { headers = {}, token = defaultToken } = {}) {
  const ac = new AbortController();
  const h = { Accept: 'text/event-stream', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const s = { events: [], heartbeats: 0, status: 0, ended: false, waiters: [] };
  const notify = () => { for (const w of s.waiters.slice()) w(); };
  s.ready = fetch(base + path, { headers: h, signal: ac.signal }).then(async (res) => {
    s.status = res.status;
    s.headers = res.headers;
    if (res.status !== 200) { s.errorBody = await res.text(); s.ended = true; notify(); return; }
    const dec = new TextDecoder();
    let pending = '';
    (async () => {
      try {
        for await (const chunk of res.body) {
          pending += dec.decode(chunk, { stream: true });
          let i;
          while ((i = pending.indexOf('\n\n')) >= 0) {
            const block = pending.slice(0, i);
            pending = pending.slice(i + 2);
            const msg = {};
            let comment = false;
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) { comment = true; continue; }
              const c = line.indexOf(':');
              const k = line.slice(0, c);
              const v = line.slice(c + 1).replace(/^ /, '');
              if (k === 'data') msg.data = msg.data === undefined ? v : `${msg.data}\n${v}`;
              else msg[k] = v;
            }
            if (comment && !msg.data) s.heartbeats++;
            else s.events.push(msg);
          }
          notify();
        }
      } catch { /* aborted */ }
      s.ended = true;
      notify();
    })();
  });
  s.waitFor = (pred, { timeout = 15000, what = 'events' } = {}) => new Promise((resolve, reject) => {
    const check = () => {
      if (pred(s)) { done(); resolve(s); } else if (s.ended && !pred(s)) { done(); reject(new Error(`stream ended before ${what}: status ${s.status} ${s.errorBody || ''} got ${s.events.length}`)); }
    };
    const t = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}: got ${s.events.length}`)); }, timeout);
    const done = () => { clearTimeout(t); s.waiters = s.waiters.filter((w) => w !== check); };
    s.waiters.push(check);
    check();
  });
  s.waitCount = (n, opts) => s.waitFor((x) => x.events.length >= n, { what: `${n} events`, ...opts });
  s.close = () => { ac.abort(); };
  return s;
}
