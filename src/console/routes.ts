/**
 * The operator's console: its page and modules (public/console/), and its
 * session: POST a key to get the cookie, GET what the page needs to run (role,
 * CSRF token, a token for its own connection), DELETE to sign out. The page
 * reads and acts through the server API, like any script.
 */
import { readFile } from 'node:fs/promises';
import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import { MeshError } from '../core/errors.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import { isLocalCaller } from '../api/guard.ts';
import { isLoopbackHost } from '../api/demo.ts';
import { jsonBody } from '../api/json-body.ts';
import { CSRF_HEADER, SESSION_COOKIE, SESSION_SECONDS, sameText, type Access } from './access.ts';

const PAGES = new URL('../../public/console/', import.meta.url);
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const FILE = /^[a-z][\w-]{0,40}\.(js|css)$/;

const Login = z.object({ key: z.string().max(1024).optional() });

/** Wrong keys an address may try per minute before it is told to wait. */
const TRIES_PER_MINUTE = 10;

/** The console's routes, mounted at CONSOLE_PATH; `clientAddress` is the app's (trusted proxies applied). */
export function consoleRoutes(access: Access, runtime: RuntimeAdapter, where: { instance: string; region?: string }, clientAddress: (c: Context) => string | undefined): Hono {
  const app = new Hono();
  const tries = new WrongKeys();

  const page = async (c: Context, file: string) => {
    const body = await readFile(new URL(file, PAGES), 'utf8');
    return c.body(body, 200, {
      'content-type': TYPES[file.split('.').pop()!]!,
      'cache-control': 'no-cache',
      // The page runs its own modules and talks to this origin only; nobody may frame it (clickjacking a kick).
      'content-security-policy': "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    });
  };
  app.get('/', (c) => page(c, 'index.html'));
  app.get('/:file{[a-z][\\w-]{0,40}\\.(?:js|css)}', (c) => {
    const file = c.req.param('file');
    if (!FILE.test(file)) throw new MeshError('ERR_NOT_FOUND', `no console file ${file.slice(0, 64)}`);
    return page(c, file).catch(() => {
      throw new MeshError('ERR_NOT_FOUND', `no console file ${file}`);
    });
  });

  // Without a key the console is this machine's: its own loopback callers, on a loopback host name
  // (a page on a rebound DNS name reaches us as same-origin, but not under a loopback name).
  const local = (c: Context) => isLocalCaller(c, runtime) && isLoopbackHost(c.req.header('host'));

  app.post('/session', async (c) => {
    const { key } = await jsonBody(c, Login, { maxDepth: 4 });
    let role: 'admin' | 'read' | null;
    if (access.keyless) {
      if (!local(c)) throw new MeshError('ERR_FORBIDDEN', 'the console answers local callers only until MESH_API_KEY is set');
      role = 'admin';
    } else {
      // The client's address as the proxies tell it: behind Fly's proxy every peer address is the proxy's,
      // and one guesser must not lock everyone out.
      const address = clientAddress(c) ?? '';
      if (tries.tooMany(address)) throw new MeshError('ERR_LIMIT', `more than ${TRIES_PER_MINUTE} wrong keys in a minute from this address: wait`);
      role = key === undefined ? null : access.roleOf(key);
      if (role === null) {
        tries.wrong(address);
        throw new MeshError('ERR_BAD_API_KEY');
      }
    }
    setCookie(c, SESSION_COOKIE, await access.sessionCookie(role), {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      maxAge: SESSION_SECONDS,
      secure: isHttps(c),
    });
    return c.json({ role });
  });

  app.get('/session', async (c) => {
    const session = await access.session(getCookie(c, SESSION_COOKIE));
    if (session === null || (access.keyless && !local(c))) {
      // The page asks for a key, or (this machine, no key) takes its session without one.
      return c.json({ code: 'ERR_NOT_AUTH', error: 'sign in with the API key', keyRequired: !(access.keyless && local(c)) }, 401);
    }
    return c.json({ role: session.role, csrf: session.csrf, token: await access.connectionToken(), instance: where.instance, region: where.region ?? null });
  });

  app.delete('/session', async (c) => {
    const session = await access.session(getCookie(c, SESSION_COOKIE));
    const csrf = c.req.header(CSRF_HEADER);
    if (session !== null && (csrf === undefined || !sameText(csrf, session.csrf))) throw new MeshError('ERR_CSRF');
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: isHttps(c) });
    return c.json({ success: true });
  });

  return app;
}

function isHttps(c: Context): boolean {
  return c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https' || c.req.header('fly-forwarded-proto') === 'https';
}

/** Wrong keys by address over the current minute; the map is emptied each minute, so it cannot grow without bound for long. */
class WrongKeys {
  #counts = new Map<string, number>();
  #since = Date.now();

  #fresh(): void {
    if (Date.now() - this.#since < 60_000 && this.#counts.size < 100_000) return;
    this.#counts = new Map();
    this.#since = Date.now();
  }

  tooMany(address: string): boolean {
    this.#fresh();
    return (this.#counts.get(address) ?? 0) >= TRIES_PER_MINUTE;
  }

  wrong(address: string): void {
    this.#fresh();
    this.#counts.set(address, (this.#counts.get(address) ?? 0) + 1);
  }
}
