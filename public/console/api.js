// The server API as the console calls it: its session cookie goes along by itself; a change
// also carries the session's CSRF token, which only this page can read.

let csrf = '';

/** Set once the session is known. */
export function useCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? 'ERR_HTTP';
  }
}

/** Calls the server API (`path` under /v1/mesh); resolves with the JSON answer, or throws an ApiError. */
export async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(`/v1/mesh${path}`, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  const headers = {};
  if (method !== 'GET') headers['x-pgmesh-csrf'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const answer = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, answer);
  return answer;
}

/** The console's own session routes (under /console). */
export async function session(method = 'GET', body) {
  const res = await fetch('/console/session', {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(method === 'DELETE' && { 'x-pgmesh-csrf': csrf }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const answer = await res.json().catch(() => null);
  return { ok: res.ok, status: res.status, answer };
}

/** A path segment: a uid or channel name as the API's routes take it. */
export const seg = (text) => encodeURIComponent(text);
