/**
 * Mercure access tokens, both generations, verified with jose:
 *
 * - Mercure 1.0: OAuth 2.0 JWT access tokens (`typ: at+jwt`) with `iss` among the
 *   trusted issuers, `aud` the hub, `exp` required, and `authorization_details` of
 *   the Mercure type granting `publish` / `subscribe` on topic matchers.
 * - Mercure 0.x (what symfony/mercure 0.6 signs): any JWT with a `mercure` claim
 *   holding `publish` and `subscribe` topic selectors (URI templates or exact).
 *
 * Publishers and subscribers may have keys of their own (HS* secrets, PEM public
 * keys for RS/ES/PS/EdDSA, or a JWKS URL). A token that does not verify is
 * `invalid_token` whatever the reason; the reason goes to the log only.
 */
import * as jose from 'jose';
import { z } from 'zod';
import { MercureError } from './errors.ts';
import { topicMatcher, type MatcherType, type TopicMatcher } from './topic-matcher.ts';

/** What a token lets its holder do. */
export interface MercureGrant {
  version: '1' | '0';
  publish: TopicMatcher[];
  subscribe: TopicMatcher[];
  /** Per subscribe grant, what it attaches to the subscriptions it matches (the subscriptions API). */
  payloads: { matcher: TopicMatcher; payload: unknown }[];
  /** The token's `sub`, if any. */
  subject?: string;
  /** Epoch ms after which the token is expired; null when it has none (0.x allows that). */
  expiresAt: number | null;
}

/** Where one role's verification keys come from. */
export type KeySource = { secret: string; alg: string } | { pem: string; alg: string } | { keySet: jose.JWTVerifyGetKey };

export interface GrantSettings {
  publisher: KeySource;
  subscriber: KeySource;
  /** The generations accepted. */
  versions: ReadonlySet<'1' | '0'>;
  /** Issuers whose 1.0 tokens are trusted (`iss`); none: 1.0 tokens are refused. */
  issuers: readonly string[];
  /** Told why a token was refused (the client hears only `invalid_token`). */
  onRefused?: (why: string) => void;
}

const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';
/** Verified tokens remembered. */
const VERIFIED_CACHE = 1000;
const MAX_DETAILS = 64;
const MAX_TOPICS = 256;
const Selectors = z.array(z.string()).max(MAX_TOPICS);
const OldClaims = z.object({ mercure: z.object({ publish: Selectors.optional(), subscribe: Selectors.optional(), payload: z.unknown().optional() }), sub: z.string().optional(), exp: z.number().optional() });
const Matcher = z.object({ match: z.string(), match_type: z.enum(['exact', 'urlpattern']).optional() });
const Detail = z.object({ type: z.literal(DETAIL_TYPE), actions: z.array(z.string()).min(1), topics: z.array(Matcher).min(1).max(MAX_TOPICS), payload: z.record(z.string(), z.unknown()).optional() });
const NewClaims = z.object({
  iss: z.string(),
  exp: z.number(),
  sub: z.string().optional(),
  authorization_details: z.array(z.unknown()).max(MAX_DETAILS).optional(),
});

/** Where a token is checked: the hub's URL (base of relative URL patterns) and the resource identifier a 1.0 token's `aud` must name. */
export interface HubIdentity {
  hubUrl: string;
  audience: string;
}

/** Verifies Mercure tokens for one hub; create it once (remote key sets are cached in it). */
export class MercureGrants {
  readonly #settings: GrantSettings;
  readonly #keys: { publisher: KeyOf; subscriber: KeyOf };
  /** Tokens that verified, with their grants (oldest dropped first past VERIFIED_CACHE). */
  readonly #verified = new Map<string, MercureGrant>();

  constructor(settings: GrantSettings) {
    this.#settings = settings;
    this.#keys = { publisher: keyOf(settings.publisher), subscriber: keyOf(settings.subscriber) };
  }

  /** The grant of a token presented for `role`; throws MercureError 401 invalid_token if it does not verify. */
  async verify(token: string, role: 'publisher' | 'subscriber', hub: HubIdentity): Promise<MercureGrant> {
    // A publisher (a php-fpm worker) sends the same token with every update: checked once, then looked up until it expires.
    const key = `${role} ${hub.hubUrl} ${hub.audience} ${token}`;
    const known = this.#verified.get(key);
    if (known !== undefined && (known.expiresAt === null || known.expiresAt > Date.now())) return known;
    const grant = await this.#verify(token, role, hub);
    if (this.#verified.size >= VERIFIED_CACHE) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(key, grant);
    return grant;
  }

  async #verify(token: string, role: 'publisher' | 'subscriber', hub: HubIdentity): Promise<MercureGrant> {
    const s = this.#settings;
    let verified: jose.JWTVerifyResult;
    try {
      const { key, algorithms } = this.#keys[role];
      verified = await jose.jwtVerify(token, key, { algorithms });
    } catch (err) {
      // A key set that cannot be fetched is the hub's outage, not the token's fault: 503, and the client may retry.
      if (!(err instanceof jose.errors.JOSEError) || err instanceof jose.errors.JWKSTimeout) throw new MercureError(503, 'the signing keys could not be fetched');
      throw this.#refused(`signature or time claims: ${(err as Error).message}`);
    }
    const typ = verified.protectedHeader.typ?.toLowerCase().replace(/^application\//, '');
    if (typ === 'at+jwt') {
      if (!s.versions.has('1')) throw this.#refused('a Mercure 1.0 token, and MERCURE_VERSIONS leaves 1.0 out');
      return this.#grantOfAccessToken(verified.payload, hub);
    }
    if (!s.versions.has('0')) throw this.#refused('not an at+jwt access token, and MERCURE_VERSIONS leaves 0.x out');
    const claims = OldClaims.safeParse(verified.payload);
    if (!claims.success) throw this.#refused('no "mercure" claim with publish/subscribe lists');
    const { mercure } = claims.data;
    const compile = (list: string[] | undefined) => (list ?? []).map((value) => topicMatcher('uritemplate', value, hub.hubUrl));
    const subscribe = this.#compiled(() => compile(mercure.subscribe));
    return {
      version: '0',
      publish: this.#compiled(() => compile(mercure.publish)),
      subscribe,
      payloads: mercure.payload === undefined ? [] : [{ matcher: topicMatcher('exact', '*', hub.hubUrl), payload: mercure.payload }],
      subject: claims.data.sub,
      expiresAt: claims.data.exp === undefined ? null : claims.data.exp * 1000,
    };
  }

  #grantOfAccessToken(payload: jose.JWTPayload, hub: HubIdentity): MercureGrant {
    const s = this.#settings;
    const claims = NewClaims.safeParse(payload);
    if (!claims.success) throw this.#refused(`claims: ${claims.error.issues[0]?.path.join('.')} missing or malformed`);
    if (!s.issuers.includes(claims.data.iss)) throw this.#refused(`issuer ${claims.data.iss.slice(0, 100)} is not in MERCURE_ISSUERS`);
    const audience = payload.aud;
    if (!(audience === hub.audience || (Array.isArray(audience) && audience.includes(hub.audience)))) throw this.#refused(`aud does not name ${hub.audience}`);
    const grant: MercureGrant = { version: '1', publish: [], subscribe: [], payloads: [], subject: claims.data.sub, expiresAt: claims.data.exp * 1000 };
    for (const entry of claims.data.authorization_details ?? []) {
      // Details of other types are another resource's business; a Mercure one that does not parse voids the whole token.
      if (typeof entry !== 'object' || entry === null || (entry as { type?: unknown }).type !== DETAIL_TYPE) continue;
      const detail = Detail.safeParse(entry);
      if (!detail.success) throw this.#refused(`a Mercure authorization detail is malformed at ${detail.error.issues[0]?.path.join('.')}`);
      const matchers = this.#compiled(() => detail.data.topics.map((t) => topicMatcher((t.match_type ?? 'exact') as MatcherType, t.match, hub.hubUrl)));
      if (detail.data.actions.includes('publish')) grant.publish.push(...matchers);
      if (detail.data.actions.includes('subscribe')) {
        grant.subscribe.push(...matchers);
        if (detail.data.payload !== undefined) for (const matcher of matchers) grant.payloads.push({ matcher, payload: detail.data.payload });
      }
    }
    return grant;
  }

  #compiled(compile: () => TopicMatcher[]): TopicMatcher[] {
    try {
      return compile();
    } catch (err) {
      throw this.#refused(`a topic matcher of the token: ${(err as Error).message}`);
    }
  }

  #refused(why: string): MercureError {
    this.#settings.onRefused?.(why);
    return MercureError.invalidToken();
  }
}

/** Whether `grant` lets its holder publish an update with these topics: every one must be granted. */
export function mayPublish(grant: MercureGrant, topics: readonly string[]): boolean {
  return topics.every((topic) => grant.publish.some((m) => m.matches(topic)));
}

/** Whether `grant` lets its holder read a private update with these topics: one granted topic is enough. */
export function mayRead(grant: MercureGrant | null, topics: readonly string[]): boolean {
  return grant !== null && topics.some((topic) => grant.subscribe.some((m) => m.matches(topic)));
}

interface KeyOf {
  key: jose.JWTVerifyGetKey | Uint8Array | jose.CryptoKey;
  algorithms: string[];
}

function keyOf(source: KeySource): KeyOf {
  if ('keySet' in source) return { key: source.keySet, algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] };
  if ('secret' in source) return { key: new TextEncoder().encode(source.secret), algorithms: [source.alg] };
  // The PEM is imported when first used (importSPKI is async); until then the promise stands for it.
  const imported = jose.importSPKI(source.pem, source.alg);
  return { key: async () => imported, algorithms: [source.alg] };
}
