// The one way the dashboard talks to the core: JSON over fetch. Errors are
// thrown as ApiError carrying the core's own message, so every page can show
// it instead of failing silently.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const CSRF_KEY = 'sbx.csrf';
let guestToken = null;
let onUnauthorized = null;

// The CSRF token goes with the session cookie, which every tab of the
// browser shares: kept in localStorage so that a tab opened later (a
// terminal page reopened) can act too; a new login replaces both.
export const session = {
  get csrf() { return localStorage.getItem(CSRF_KEY) || sessionStorage.getItem(CSRF_KEY); },
  set csrf(v) {
    sessionStorage.removeItem(CSRF_KEY);
    if (v) localStorage.setItem(CSRF_KEY, v); else localStorage.removeItem(CSRF_KEY);
  },
};

// Guest mode: every call carries the link's token instead of the session cookie.
export function useGuestToken(token) { guestToken = token; }
export function isGuest() { return guestToken !== null; }
// Called with the ApiError of any 401 (session ended, link expired or revoked).
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }
// For callers that do not go through api() (the live stream).
export function notifyUnauthorized() {
  if (onUnauthorized) onUnauthorized(new ApiError(401, 'unauthorized', 'the session has ended'));
}
// The Authorization header value of guest mode, or null.
export function guestAuthorization() { return guestToken ? `Bearer ${guestToken}` : null; }

export async function api(method, path, body, { raw = false, accept = 'application/json' } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (guestToken) headers.Authorization = `Bearer ${guestToken}`;
  else if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the server (${e.message})`);
  }
  if (res.status === 204) return null;
  if (raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = data?.error
      ? new ApiError(res.status, data.error.code, data.error.message, data.error.field)
      : new ApiError(res.status, 'http_error', `${method} ${path} failed with HTTP ${res.status}`);
    if (res.status === 401 && onUnauthorized && !path.endsWith('/auth/login')) onUnauthorized(err);
    throw err;
  }
  return data;
}

// Builds a query string from an object, skipping empty values.
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}
