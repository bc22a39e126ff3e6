/**
 * Who may call the server API: holders of MESH_API_KEY (as a Bearer token), of
 * MESH_API_READ_KEY (GET only), of a console session (console/access.ts), or,
 * with no API key configured, programs on this machine — a loopback peer that
 * is neither a reverse proxy forwarding someone else's request nor a browser.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { CSRF_HEADER, SESSION_COOKIE, sameText, type Access, type Role } from '../console/access.ts';
import { bearerToken } from '../core/auth.ts';
import { MeshError } from '../core/errors.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';

// A proxy on this host makes every request come from 127.0.0.1: these headers say whom it is for.
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'fly-client-ip', 'cf-connecting-ip'];

/** True for 127.0.0.0/8 and ::1, plain or IPv4-mapped. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.replace(/^::ffff:/i, '');
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** True when the request comes from this machine itself: a loopback peer, not forwarding anyone's request. */
export function isLocalCaller(c: Context, runtime: RuntimeAdapter): boolean {
  if (!isLoopback(runtime.remoteAddress(c))) return false;
  return FORWARDING_HEADERS.every((name) => c.req.header(name) === undefined);
}

/** True when a browser sent the request on a web page's behalf (which a page on any site can make it do). */
export function isBrowserRequest(c: Context): boolean {
  const site = c.req.header('sec-fetch-site');
  return c.req.header('origin') !== undefined || (site !== undefined && site !== 'none');
}

/** Middleware that admits server-API callers: by key, by console session, or (with no API key) this machine's programs. */
export function serverApiGuard(access: Access, runtime: RuntimeAdapter): MiddlewareHandler {
  return async (c, next) => {
    const role = await roleOf(c, access, runtime);
    if (role === 'read' && !READS.has(c.req.method)) throw new MeshError('ERR_READ_ONLY');
    return next();
  };
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

async function roleOf(c: Context, access: Access, runtime: RuntimeAdapter): Promise<Role> {
  const header = c.req.header('authorization');
  if (header !== undefined) {
    const given = bearerToken(header);
    const role = given === undefined ? null : access.roleOf(given);
    if (role === null) throw new MeshError('ERR_BAD_API_KEY');
    return role;
  }
  const session = await access.session(getCookie(c, SESSION_COOKIE));
  if (session !== null) {
    // Without a key the console is this machine's only, like the API.
    if (access.keyless && !isLocalCaller(c, runtime)) throw new MeshError('ERR_FORBIDDEN', 'the console answers local callers only until MESH_API_KEY is set');
    // A cookie goes with any request the browser makes, a page on another site's too: a change must also carry what only the console's page can read.
    if (!READS.has(c.req.method)) {
      const csrf = c.req.header(CSRF_HEADER);
      if (csrf === undefined || !sameText(csrf, session.csrf) || c.req.header('sec-fetch-site') === 'cross-site') throw new MeshError('ERR_CSRF');
    }
    return session.role;
  }
  if (access.hasAdminKey) throw new MeshError('ERR_BAD_API_KEY');
  if (!isLocalCaller(c, runtime)) {
    // A read key alone opens reading to the world; changes stay this machine's.
    if (!access.keyless) throw new MeshError('ERR_BAD_API_KEY');
    throw new MeshError('ERR_FORBIDDEN', 'the server API answers local callers only until MESH_API_KEY is set (a proxied request is not local)');
  }
  // Without a key, a web page open on this machine could otherwise reach the API through the browser
  // (a text/plain POST needs no preflight).
  if (isBrowserRequest(c)) throw new MeshError('ERR_FORBIDDEN', 'the server API does not answer browsers until MESH_API_KEY is set');
  if (c.req.method !== 'GET' && c.req.method !== 'DELETE' && !isJson(c.req.header('content-type'))) {
    throw new MeshError('ERR_UNSUPPORTED_MEDIA', 'send the body as Content-Type: application/json');
  }
  return 'admin';
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim());
}
