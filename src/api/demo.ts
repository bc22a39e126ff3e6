/**
 * The demo page and the bundled browser client, served from public/, and —
 * only when no authentication is configured — a loopback-only endpoint that
 * mints short-lived tokens so the demo works out of the box.
 */
import { readFile } from 'node:fs/promises';
import { Hono } from 'hono';
import { SignJWT } from 'jose';
import { z } from 'zod';
import { MeshError, badArgs } from '../core/errors.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import { isLocalCaller } from './guard.ts';

const PUBLIC = new URL('../../public/', import.meta.url);
const FILES: Record<string, string> = {
  '/': 'index.html',
  '/mesh.js': 'mesh.js',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8' };

const TokenQuery = z.object({ uid: z.string().regex(/^[\w.-]{1,64}$/, 'uid: letters, digits, _ . - (at most 64)') });

/** True for a Host header naming this machine: localhost or a loopback address, any port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.toLowerCase().replace(/:\d+$/, '');
  return name === 'localhost' || name.endsWith('.localhost') || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** The demo routes; `devSecret` is set only when pgmesh runs with no auth configured. */
export function demoRoutes(runtime: RuntimeAdapter, devSecret: string | undefined): Hono {
  const app = new Hono();
  const key = devSecret === undefined ? undefined : new TextEncoder().encode(devSecret);
  for (const [path, file] of Object.entries(FILES)) {
    app.get(path, async (c) => {
      const body = await readFile(new URL(file, PUBLIC), 'utf8');
      return c.body(body, 200, { 'content-type': TYPES[file.split('.').pop()!]!, 'cache-control': 'no-cache' });
    });
  }
  app.get('/v1/dev/token', async (c) => {
    if (key === undefined) throw new MeshError('ERR_NOT_FOUND', 'dev tokens exist only when no JWT_SECRET, JWKS_URL or AUTH_URL is set');
    if (!isLocalCaller(c, runtime)) throw new MeshError('ERR_FORBIDDEN', 'dev tokens are for local callers only (a proxied request is not local)');
    // A page on a rebound DNS name reaches us as same-origin; only a loopback Host is this machine's own.
    if (!isLoopbackHost(c.req.header('host'))) throw new MeshError('ERR_FORBIDDEN', 'dev tokens are served to localhost and loopback host names only');
    const query = TokenQuery.safeParse(c.req.query());
    if (!query.success) throw badArgs(query.error.issues);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(query.data.uid)
      .setIssuedAt()
      .setExpirationTime('12h')
      .sign(key);
    return c.json({ token });
  });
  return app;
}
