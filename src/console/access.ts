/**
 * Who may see and use the server API and the console: the API key (everything),
 * the read key (GET only), and the console's session cookie, which a person
 * gets once for typing one of those keys (or, with no key configured, for
 * opening the console on this machine). The cookie is a token signed with a
 * key derived from the API keys, so every instance of the cluster reads it:
 * a balancer may send each request elsewhere. Changes made with it carry a
 * CSRF token only the console's own page can read.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { SignJWT, jwtVerify } from 'jose';
import { CONSOLE_ISSUER } from '../core/auth.ts';

export type Role = 'admin' | 'read';

/** The console's session cookie: HttpOnly, SameSite=Strict. */
export const SESSION_COOKIE = 'pgmesh_console';
/** The header a console request that changes something carries (the session's CSRF token). */
export const CSRF_HEADER = 'x-pgmesh-csrf';
/** How long a console session lasts. */
export const SESSION_SECONDS = 12 * 3600;
/** How long a console's token for its own connection (mesh.js) lasts; the page fetches a fresh one to reconnect. */
const CONNECTION_TOKEN_SECONDS = 600;
const SESSION_ISSUER = 'pgmesh-console-session';

/** A console session as its cookie says. */
export interface ConsoleSession {
  role: Role;
  /** What a request that changes something must carry in CSRF_HEADER. */
  csrf: string;
}

/** The keys of the server API and the console, and the session cookies and tokens made from them. */
export class Access {
  readonly #admin: Buffer | undefined;
  readonly #read: Buffer | undefined;
  /** Signs the session cookies and the console's connection tokens. */
  readonly signingKey: Uint8Array;

  constructor(apiKey: string | undefined, readKey: string | undefined) {
    this.#admin = apiKey === undefined ? undefined : Buffer.from(apiKey);
    this.#read = readKey === undefined ? undefined : Buffer.from(readKey);
    // From the keys every instance shares, so any instance reads any instance's cookie; with no key
    // (loopback callers only, one machine) a secret of this process is enough.
    const base = apiKey ?? readKey ?? crypto.getRandomValues(new Uint8Array(32));
    this.signingKey = new Uint8Array(createHmac('sha256', typeof base === 'string' ? base : Buffer.from(base)).update('pgmesh console v1').digest());
  }

  /** True when no key is configured: the API and the console answer this machine only. */
  get keyless(): boolean {
    return this.#admin === undefined && this.#read === undefined;
  }

  /** True when the API key is configured (without it, changes are for this machine's callers only). */
  get hasAdminKey(): boolean {
    return this.#admin !== undefined;
  }

  /** The role a key grants, or null for a wrong one (compared in constant time). */
  roleOf(key: string): Role | null {
    const given = Buffer.from(key);
    if (this.#admin !== undefined && sameBytes(given, this.#admin)) return 'admin';
    if (this.#read !== undefined && sameBytes(given, this.#read)) return 'read';
    return null;
  }

  /** A new session's cookie value. */
  async sessionCookie(role: Role): Promise<string> {
    return new SignJWT({ role })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(SESSION_ISSUER)
      .setJti(crypto.randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${SESSION_SECONDS}s`)
      .sign(this.signingKey);
  }

  /** The session a cookie value stands for, or null (forged, expired, or from other keys). */
  async session(cookie: string | undefined): Promise<ConsoleSession | null> {
    if (cookie === undefined || cookie.length > 2048) return null;
    try {
      const { payload } = await jwtVerify(cookie, this.signingKey, { algorithms: ['HS256'], issuer: SESSION_ISSUER, requiredClaims: ['exp', 'jti'] });
      const role = payload.role === 'admin' || payload.role === 'read' ? payload.role : null;
      if (role === null) return null;
      return { role, csrf: createHmac('sha256', this.signingKey).update(`csrf:${payload.jti}`).digest('base64url') };
    } catch {
      return null;
    }
  }

  /** A token for the console's own connection: it reads any channel, publishes to none (core/auth.ts). */
  connectionToken(): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(CONSOLE_ISSUER)
      .setIssuedAt()
      .setExpirationTime(`${CONNECTION_TOKEN_SECONDS}s`)
      .sign(this.signingKey);
  }
}

/** Equal strings, compared in constant time. */
export function sameText(a: string, b: string): boolean {
  return sameBytes(Buffer.from(a), Buffer.from(b));
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
