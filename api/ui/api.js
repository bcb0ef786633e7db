// api.js - the dashboard's calls to spool-api: JSON over fetch with the bearer token
// from sessionStorage (no cookies: a token in a header cannot be sent by another site,
// so there is nothing to forge), and outputs fetched the same way into blob: URLs.

const KEY = 'spool.token';

export function token() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called when an answer is 401: the app asks for a token and shows no data.
let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

// GET (or method) path; the parsed JSON answer, or an ApiError.
export async function api(path, opts) {
  const o = opts || {};
  const init = { method: o.method || 'GET', headers: authHeaders(), credentials: 'omit',
    cache: 'no-store', signal: o.signal };
  if (o.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(o.body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'spool-api does not answer');
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (r.status === 401) {
    onUnauthorized();
    throw new ApiError(401, 'unauthorized', 'a token is needed');
  }
  if (!r.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(r.status, err.code || 'http_' + r.status, err.message || r.statusText);
  }
  return data;
}

// An output as a blob: URL (the caller revokes it when the page changes).
export async function blobUrl(path) {
  const r = await fetch(path, { headers: authHeaders(), credentials: 'omit', cache: 'no-store' });
  if (r.status === 401) {
    onUnauthorized();
    throw new ApiError(401, 'unauthorized', 'a token is needed');
  }
  if (!r.ok) throw new ApiError(r.status, 'http_' + r.status, 'cannot fetch ' + path);
  return URL.createObjectURL(await r.blob());
}
