/**
 * Who may call the server API: holders of MESH_API_KEY (as a Bearer token), or,
 * with no key configured, only programs on this machine — a loopback peer that
 * is neither a reverse proxy forwarding someone else's request nor a browser.
 */
import type { Context, MiddlewareHandler } from 'hono';
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

/** Middleware that admits server-API callers. */
export function serverApiGuard(apiKey: string | undefined, runtime: RuntimeAdapter): MiddlewareHandler {
  const expected = apiKey === undefined ? undefined : new TextEncoder().encode(apiKey);
  return async (c, next) => {
    if (expected === undefined) {
      if (!isLocalCaller(c, runtime)) {
        throw new MeshError('ERR_FORBIDDEN', 'the server API answers local callers only until MESH_API_KEY is set (a proxied request is not local)');
      }
      // Without a key, a web page open on this machine could otherwise reach the API through the browser
      // (a text/plain POST needs no preflight).
      if (isBrowserRequest(c)) throw new MeshError('ERR_FORBIDDEN', 'the server API does not answer browsers until MESH_API_KEY is set');
      if (c.req.method !== 'GET' && c.req.method !== 'DELETE' && !isJson(c.req.header('content-type'))) {
        throw new MeshError('ERR_UNSUPPORTED_MEDIA', 'send the body as Content-Type: application/json');
      }
      return next();
    }
    const given = bearerToken(c.req.header('authorization'));
    if (given === undefined || !sameBytes(new TextEncoder().encode(given), expected)) throw new MeshError('ERR_BAD_API_KEY');
    return next();
  };
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim());
}

// Constant-time for equal lengths, so the key cannot be guessed byte by byte from timings.
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
