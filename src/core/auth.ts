/**
 * Who is on the other end: JWT verification with jose (HS256 by shared secret,
 * RS/ES/PS/EdDSA through a JWKS URL), or the seed flow's token exchange webhook
 * (AUTH_URL: POST {"token"} -> {"uid"}). Claims become Grants (see channels.ts).
 *
 * Claims read: `sub` (or `uid`) — the user id; `channels` — extra subscribe
 * patterns; `publish` — the only patterns the user may publish to; `exp`/`nbf`.
 */
import * as jose from 'jose';
import { z } from 'zod';
import { MeshError } from './errors.ts';
import { DEFAULT_MAX_JSON_DEPTH, isIdText, readJson } from './edge-input.ts';
import { type Answer, RedirectRefused, callOut } from './outbound.ts';
import { RESERVED_PREFIX, type Grants } from './channels.ts';

/** A verified caller: their grants and when their token stops being valid. */
export interface Identity extends Grants {
  /** Epoch milliseconds after which the token is expired; null when it has no `exp`. */
  expiresAt: number | null;
}

export interface AuthSettings {
  jwtSecret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  authUrl?: string;
  /** Refuse JWTs without `exp` (a token that never expires would authorise its holder forever). */
  requireExp?: boolean;
  /** Deepest JSON an AUTH_URL or JWKS answer may nest. */
  maxJsonDepth?: number;
  /** Verifies the operator console's own tokens (issuer CONSOLE_ISSUER): they read any channel and publish to none. */
  consoleKey?: Uint8Array;
}

/** The issuer of the console's tokens: such a token is checked against the console's key only. */
export const CONSOLE_ISSUER = 'pgmesh-console';
/** The uid of an open console's connection: pgmesh's own ($), so no user list, presence or webhook shows it. */
export const CONSOLE_UID = '$console';
const CONSOLE_GRANTS: readonly string[] = Object.freeze(['*']);

/**
 * Whether `uid` is one of pgmesh's own connections (a console, a Mercure subscriber, a Pusher member), not
 * a user: no token may name one, and the user limits, rpc and user webhooks pass them by.
 */
export function isOwnConnection(uid: string): boolean {
  return uid.startsWith(RESERVED_PREFIX);
}

/** Most bytes of an AUTH_URL answer or a key set that are read. */
const MAX_ANSWER = 256 * 1024;

// Most tokens grant no extra channels: one shared empty list, not one per connection.
const NO_GRANTS: readonly string[] = Object.freeze([]);

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const patterns = z.array(z.string().max(255)).max(1000);
// The uid is written to presence and cursor rows and names the user's channel: clean text, of a channel name's length.
const userId = z.union([
  z
    .string()
    .min(1)
    .max(240)
    .refine(isIdText, 'holds a control character or a lone surrogate'),
  z.number(),
]);
const Claims = z.object({
  sub: userId.optional(),
  uid: userId.optional(),
  channels: patterns.optional(),
  publish: patterns.optional(),
  exp: z.number().optional(),
});
const ExchangeAnswer = Claims.extend({ uid: userId });

/** An HS256 verification key for `secret`. */
function hmacKey(secret: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
}

/** Verifies tokens once configured; create one per process (the JWKS cache lives in it). */
export class Authenticator {
  readonly #secret: Uint8Array<ArrayBuffer> | undefined;
  /** The secret imported once: given the bytes, jose imports them again for every token (2.4% of a survivor's CPU in a reconnect storm). */
  #hmacKey: Promise<CryptoKey> | undefined;
  readonly #jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;
  readonly #algorithms: string[];
  readonly #settings: AuthSettings;

  constructor(settings: AuthSettings) {
    this.#settings = settings;
    this.#secret = settings.jwtSecret ? new TextEncoder().encode(settings.jwtSecret) : undefined;
    this.#jwks = settings.jwksUrl ? remoteKeySet(settings.jwksUrl, settings.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH) : undefined;
    this.#algorithms = [...(this.#secret ? ['HS256'] : []), ...(this.#jwks ? ASYMMETRIC : [])];
  }

  /** Verifies a token and returns the caller's identity, or throws a coded MeshError. */
  async verify(token: string): Promise<Identity> {
    if (this.#settings.consoleKey !== undefined && looksLikeJwt(token) && issuerOf(token) === CONSOLE_ISSUER) return this.#console(token, this.#settings.consoleKey);
    const hasKeys = this.#algorithms.length > 0;
    if (this.#settings.authUrl && (!hasKeys || !looksLikeJwt(token))) return this.#exchange(token);
    if (!hasKeys) throw new MeshError('ERR_TOKEN_INVALID', 'no token verification is configured');
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, this.#key, {
        algorithms: this.#algorithms,
        issuer: this.#settings.issuer,
        audience: this.#settings.audience,
        requiredClaims: this.#settings.requireExp ? ['exp'] : [],
      }));
    } catch (err) {
      throw fromJose(err);
    }
    return identityFrom(payload);
  }

  // HS256 tokens are checked against the secret only and everything else against
  // the JWKS only, so a public key can never be used as an HMAC secret.
  #key = async (header: jose.JWTHeaderParameters, token: jose.FlattenedJWSInput) => {
    if (header.alg === 'HS256' && this.#secret) return (this.#hmacKey ??= hmacKey(this.#secret));
    if (this.#jwks && header.alg !== 'HS256') {
      try {
        return await this.#jwks(header, token);
      } catch (err) {
        // An unknown kid is the token's fault; anything else (unreachable, timeout, not a key set) is the key server's.
        if (err instanceof jose.errors.JWKSNoMatchingKey || err instanceof jose.errors.JWKSMultipleMatchingKeys) throw err;
        throw new MeshError('ERR_AUTH_UNAVAILABLE', 'could not fetch signing keys', { cause: err });
      }
    }
    throw new MeshError('ERR_TOKEN_INVALID', `algorithm ${String(header.alg)} is not accepted`);
  };

  async #console(token: string, key: Uint8Array): Promise<Identity> {
    try {
      const { payload } = await jose.jwtVerify(token, key, { algorithms: ['HS256'], issuer: CONSOLE_ISSUER, requiredClaims: ['exp'] });
      return { uid: CONSOLE_UID, subscribe: CONSOLE_GRANTS, publish: NO_GRANTS, expiresAt: payload.exp! * 1000 };
    } catch (err) {
      throw fromJose(err);
    }
  }

  async #exchange(token: string): Promise<Identity> {
    let res: Answer;
    try {
      res = await callOut(
        this.#settings.authUrl!,
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }), signal: AbortSignal.timeout(5000) },
        MAX_ANSWER,
      );
    } catch (err) {
      const why = err instanceof MeshError || err instanceof RedirectRefused ? `AUTH_URL ${err.message}` : 'AUTH_URL unreachable';
      throw new MeshError('ERR_AUTH_UNAVAILABLE', `token exchange failed: ${why}`, { cause: err });
    }
    if (res.status >= 500) throw new MeshError('ERR_AUTH_UNAVAILABLE', `token exchange failed: AUTH_URL answered ${res.status}`);
    if (!res.ok) throw new MeshError('ERR_TOKEN_INVALID', 'token refused by AUTH_URL');
    let body: unknown = null;
    try {
      body = readJson(res.text, this.#settings.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH, 'AUTH_URL answer');
    } catch {
      // not usable: said below
    }
    const answer = ExchangeAnswer.safeParse(body);
    if (!answer.success) throw new MeshError('ERR_AUTH_UNAVAILABLE', 'token exchange failed: AUTH_URL answer has no "uid"');
    return identityFrom(answer.data);
  }
}

/** A JWKS that jose fetches (and caches) through callOut: no redirect followed, at most 256 KB, nesting bounded. */
export function remoteKeySet(url: string, maxJsonDepth: number): ReturnType<typeof jose.createRemoteJWKSet> {
  const keySetFetch = async (target: string, init: RequestInit) => {
    const answer = await callOut(target, init, MAX_ANSWER);
    if (answer.ok) readJson(answer.text, maxJsonDepth, 'key set');
    return new Response(answer.text, { status: answer.status, headers: answer.headers });
  };
  return jose.createRemoteJWKSet(new URL(url), { [jose.customFetch]: keySetFetch });
}

/** The credentials of an `Authorization: Bearer …` header (the scheme is case-insensitive), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^bearer +(\S+)\s*$/i.exec(header);
  return match?.[1];
}

// The claims read before the signature is checked only choose which key checks it.
function issuerOf(token: string): string | undefined {
  try {
    return jose.decodeJwt(token).iss;
  } catch {
    return undefined;
  }
}

function looksLikeJwt(token: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
}

function identityFrom(payload: unknown): Identity {
  const claims = Claims.safeParse(payload);
  if (!claims.success) throw new MeshError('ERR_TOKEN_CLAIM', `token claims malformed: ${claims.error.issues[0]?.path.join('.')}`);
  const uid = claims.data.sub ?? claims.data.uid;
  if (uid === undefined) throw new MeshError('ERR_TOKEN_CLAIM', 'token has no "sub"');
  // $-uids are pgmesh's own connections (consoles, Mercure subscribers, Pusher members), which presence,
  // webhooks and the limits treat as no one: a user named so would be hidden, and unlimited.
  if (isOwnConnection(String(uid))) throw new MeshError('ERR_TOKEN_CLAIM', 'a user id may not start with "$" (pgmesh\'s own connections)');
  return {
    uid: String(uid),
    subscribe: claims.data.channels ?? NO_GRANTS,
    publish: claims.data.publish ?? null,
    expiresAt: claims.data.exp === undefined ? null : claims.data.exp * 1000,
  };
}

function fromJose(err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  if (err instanceof jose.errors.JWTExpired) return new MeshError('ERR_TOKEN_EXPIRED', 'token expired');
  if (err instanceof jose.errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') return new MeshError('ERR_TOKEN_NOT_YET_VALID', 'token not yet valid');
    return new MeshError('ERR_TOKEN_CLAIM', `token "${err.claim}" claim check failed`);
  }
  // Not from jose and not ours: a bug, reported as an internal error rather than blamed on the key server.
  if (!(err instanceof jose.errors.JOSEError)) return new MeshError('ERR_INTERNAL', undefined, { cause: err });
  if (err instanceof jose.errors.JOSEAlgNotAllowed) return new MeshError('ERR_TOKEN_INVALID', 'token algorithm not accepted');
  if (err instanceof jose.errors.JWSSignatureVerificationFailed) return new MeshError('ERR_TOKEN_INVALID', 'token signature invalid');
  return new MeshError('ERR_TOKEN_INVALID', 'invalid token', { cause: err });
}
