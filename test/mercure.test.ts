/**
 * pgmesh as a Mercure hub, driven as the protocol's users drive one: a real
 * EventSource in Chromium subscribes on one instance while updates are POSTed
 * to another, both on one Postgres. The cases are those of the Mercure
 * project's conformance suite, for 1.0 (match / match_urlpattern, at+jwt
 * tokens) and for 0.x (topic= URI templates, mercure claims), written here as
 * our own; then resume by Last-Event-ID (custom and hub ids), private updates
 * with a subscriber's cookie, token expiry, CORS, and every refusal with its
 * RFC 6750 answer.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { launchBrowser } from './harness/browser.ts';
import { startCluster } from './harness/cluster.ts';
import { startTestMesh } from './harness/mesh.ts';
import { hasSymfonyMercure, runPhp } from './harness/php.ts';
import { ROOT } from './harness/process.ts';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../src/config.ts';

/** The reference hub's default key, which the conformance suite's tokens are signed with. */
const KEY = '!ChangeThisMercureHubJWTSecretKey!';
const ISSUER = 'https://localhost';
const AUDIENCE = 'https://localhost/.well-known/mercure';
const env = { MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_ISSUERS: ISSUER, MERCURE_AUDIENCE: AUDIENCE, MERCURE_ANONYMOUS: '1', MERCURE_CORS_ORIGINS: 'https://app.example' };
const { instances } = await startCluster(['node', 'bun'], { env });
const [A, B] = instances as [(typeof instances)[0], (typeof instances)[0]];
const browser = await launchBrowser();
const context = await browser.newContext();
const page = await context.newPage();
await page.goto(`${B.url}/`);
afterAll(() => browser.close());

const secret = new TextEncoder().encode(KEY);
const random = () => randomBytes(20).toString('hex');

/** A Mercure 1.0 access token granting `actions` on `topics` (exact, or {match, match_type}). */
function accessToken(grants: { actions: string[]; topics: (string | { match: string; match_type: string })[]; payload?: unknown }[], claims: Record<string, unknown> = {}, expiresIn = '1h') {
  const authorization_details = grants.map((g) => ({ type: 'https://mercure.rocks/authorization-detail', ...g, topics: g.topics.map((t) => (typeof t === 'string' ? { match: t } : t)) }));
  return new SignJWT({ authorization_details, ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('tester').setExpirationTime(expiresIn).sign(secret);
}
/** A Mercure 0.x token, as symfony/mercure signs one: a `mercure` claim and nothing else. */
const oldToken = (mercure: { publish?: string[]; subscribe?: string[] }) => new SignJWT({ mercure }).setProtectedHeader({ alg: 'HS256' }).sign(secret);
const everything = await accessToken([{ actions: ['publish', 'subscribe'], topics: ['*'] }]);
const everythingOld = await oldToken({ publish: ['*'], subscribe: ['*'] });

/** POSTs an update; resolves with what the hub answered. */
async function publish(base: string, token: string | null, fields: Record<string, string | string[]>, headers: Record<string, string> = {}) {
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) for (const v of [value].flat()) form.append(name, v);
  const response = await fetch(`${base}/.well-known/mercure`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    body: form,
  });
  return { status: response.status, contentType: response.headers.get('content-type'), challenge: response.headers.get('www-authenticate'), body: await response.text() };
}

/** Opens an EventSource in the page with these query parameters; resolves once it is open. */
async function listen(params: [string, string][]): Promise<void> {
  await page.evaluate(async (params) => {
    const w = window as any;
    w.source?.close();
    w.got = [];
    const url = new URL('/.well-known/mercure', location.origin);
    for (const [name, value] of params) url.searchParams.append(name, value);
    const source = (w.source = new EventSource(url, { withCredentials: true }));
    source.onmessage = (e: MessageEvent) => w.got.push({ type: e.type, id: e.lastEventId, data: e.data });
    await new Promise<void>((resolve, reject) => {
      source.onopen = () => resolve();
      source.onerror = () => reject(new Error(`EventSource failed: ${url}`));
    });
  }, params);
}

/**
 * Whether an update was received: a marker update the subscriber listens to is published after it,
 * and updates reach a subscriber in order, so once the marker is in, the update is in or never comes.
 */
async function receivedBefore(marker: string, publishOn: string): Promise<{ type: string; id: string; data: string }[]> {
  expect((await publish(publishOn, everything, { topic: marker, data: 'marker' })).status).toBe(200);
  await page.waitForFunction(() => (window as any).got.some((e: { data: string }) => e.data === 'marker'), null, { timeout: 10_000 });
  return page.evaluate(() => (window as any).got);
}

interface Case {
  name: string;
  updateTopics: string[];
  topicSelectors: string[];
  mustBeReceived: boolean;
  private?: true;
}

/** The conformance cases, for one protocol generation's selectors. */
function cases(pattern: (name: string) => string): Case[] {
  const r = Array.from({ length: 6 }, random);
  return [
    { name: 'raw string', mustBeReceived: true, updateTopics: [r[0]!], topicSelectors: [r[0]!] },
    { name: 'multiple topics', mustBeReceived: true, updateTopics: [random(), r[1]!], topicSelectors: [r[1]!] },
    { name: 'multiple topic selectors', mustBeReceived: true, updateTopics: [r[2]!], topicSelectors: ['foo', r[2]!] },
    { name: 'URI', mustBeReceived: true, updateTopics: [`https://example.net/foo/${r[3]}`], topicSelectors: [`https://example.net/foo/${r[3]}`] },
    { name: 'pattern', mustBeReceived: true, updateTopics: [`https://example.net/foo/${r[4]}`], topicSelectors: [`https://example.net/foo/${pattern('random')}`] },
    { name: 'nonmatching raw string', mustBeReceived: false, updateTopics: ['will-not-match'], topicSelectors: ['another-name'] },
    { name: 'nonmatching URI', mustBeReceived: false, updateTopics: ['https://example.net/foo/will-not-match'], topicSelectors: ['https://example.net/foo/another-name'] },
    { name: 'nonmatching pattern', mustBeReceived: false, updateTopics: ['https://example.net/foo/will-not-match'], topicSelectors: [`https://example.net/bar/${pattern('var')}`] },
    { name: 'private raw string', mustBeReceived: false, private: true, updateTopics: [r[0]!], topicSelectors: [r[0]!] },
    { name: 'private URI', mustBeReceived: false, private: true, updateTopics: [`https://example.net/foo/${r[3]}`], topicSelectors: [`https://example.net/foo/${r[3]}`] },
    { name: 'private pattern', mustBeReceived: false, private: true, updateTopics: [`https://example.net/foo/${r[4]}`], topicSelectors: [`https://example.net/foo/${pattern('random')}`] },
  ];
}

const generations = [
  { version: '1.0', token: everything, param: (s: string) => (/\/:[A-Za-z_]/.test(s) ? 'match_urlpattern' : 'match'), pattern: (name: string) => `:${name}` },
  { version: '0.x', token: everythingOld, param: () => 'topic', pattern: (name: string) => `{${name}}` },
];

for (const generation of generations) {
  describe(`the Mercure ${generation.version} conformance cases (subscribed on B, published on A)`, () => {
    for (const data of cases(generation.pattern)) {
      test(data.name, async () => {
        const marker = `marker-${random()}`;
        await listen([...data.topicSelectors.map((s): [string, string] => [generation.param(s), s]), [generation.param(marker), marker]]);
        const update = { topic: data.updateTopics, id: `id-${JSON.stringify(data.updateTopics)}`, data: `data for\n\n        ${data.name}`, ...(data.private ? { private: 'on' } : {}) };
        const answer = await publish(A.url, generation.token, update);
        const got = await receivedBefore(marker, A.url);
        const received = got.some((e) => e.type === 'message' && e.id === update.id && e.data === update.data);
        expect(received).toBe(data.mustBeReceived);
        // Published or not to this subscriber, the update was accepted: 200, its id as text/plain.
        expect(answer.status).toBe(200);
        expect(answer.contentType).toMatch(/^text\/plain(?:$|;.*)/);
        expect(answer.body).toBe(update.id);
      }, 30_000);
    }
  });
}

describe('Mercure updates: ids, types, resume', () => {
  test('an update without an id gets the hub\'s (#<n>); type and retry become the SSE event and retry', async () => {
    const topic = `typed-${random()}`;
    const marker = `marker-${random()}`;
    await listen([['match', topic], ['match', marker]]);
    await page.evaluate(() => (window as any).source.addEventListener('order.shipped', (e: MessageEvent) => (window as any).got.push({ type: e.type, id: e.lastEventId, data: e.data })));
    const answer = await publish(A.url, everything, { topic, data: 'typed', type: 'order.shipped', retry: '4000' });
    expect(answer.body).toMatch(/^#\d+$/);
    const got = await receivedBefore(marker, A.url);
    expect(got.filter((e) => e.data !== 'marker')).toEqual([{ type: 'order.shipped', id: answer.body, data: 'typed' }]);
  }, 30_000);

  test('Last-Event-ID resumes after a custom id or a hub id, on the other instance; earliest replays; an id never given replays nothing', async () => {
    const topic = `resume-${random()}`;
    const ids = [];
    for (const [i, id] of ['first', undefined, 'third'].entries()) ids.push((await publish(A.url, everything, { topic, data: `u${i}`, ...(id ? { id: `${id}-${topic}` } : {}) })).body);
    const read = async (headers: Record<string, string>, query = '') => {
      const controller = new AbortController();
      const response = await fetch(`${B.url}/.well-known/mercure?match=${topic}${query}`, { headers, signal: controller.signal });
      const reader = response.body!.getReader();
      let text = '';
      // The replay comes first; a marker published after it says the replay is over (the markers are left out).
      const end = `end-${random()}`;
      await publish(A.url, everything, { topic, data: end });
      while (!text.includes(`data: ${end}`)) {
        const chunk = await reader.read();
        if (chunk.done) throw new Error(`the stream ended before the marker: ${text}`);
        text += new TextDecoder().decode(chunk.value);
      }
      controller.abort();
      return { anchor: response.headers.get('mercure-last-event-id'), data: [...text.matchAll(/data: (u\d)\n/g)].map((m) => m[1]) };
    };
    expect(await read({ 'last-event-id': ids[0]! })).toEqual({ anchor: ids[0]!, data: ['u1', 'u2'] });
    expect(await read({ 'last-event-id': ids[1]! })).toEqual({ anchor: ids[1]!, data: ['u2'] });
    expect(await read({}, `&last_event_id=${encodeURIComponent(ids[1]!)}`)).toEqual({ anchor: ids[1]!, data: ['u2'] });
    // 0.x's spelling of the query parameter.
    expect(await read({}, `&lastEventID=${encodeURIComponent(ids[0]!)}`)).toEqual({ anchor: ids[0]!, data: ['u1', 'u2'] });
    expect(await read({ 'last-event-id': 'earliest' })).toEqual({ anchor: 'earliest', data: ['u0', 'u1', 'u2'] });
    expect(await read({ 'last-event-id': 'never-given' })).toEqual({ anchor: 'earliest', data: [] });
    // An id no update can carry (the fuzzer's NUL, which Postgres cannot even be asked about): the same, not a 503.
    expect(await read({}, '&last_event_id=%00')).toEqual({ anchor: 'earliest', data: [] });
  }, 30_000);
});

describe('private updates and tokens', () => {
  test("a private update reaches a subscriber whose cookie grants one of its topics (an alternate one will do), and no one else", async () => {
    const book = `https://example.com/books/${random()}`;
    const mine = `https://example.com/users/42/books/${random()}`;
    const marker = `marker-${random()}`;
    const reader = await accessToken([{ actions: ['subscribe'], topics: [{ match: 'https://example.com/users/42/*', match_type: 'urlpattern' }, marker] }]);
    await context.addCookies([{ name: 'mercureAuthorization', value: reader, url: B.url }]);
    try {
      await listen([['match_urlpattern', 'https://example.com/books/:id'], ['match', marker]]);
      await publish(A.url, everything, { topic: [book, mine], data: 'for user 42', private: 'on' });
      await publish(A.url, everything, { topic: `https://example.com/books/${random()}`, data: 'for nobody', private: 'on' });
      const got = await receivedBefore(marker, A.url);
      expect(got.map((e) => e.data)).toEqual(['for user 42', 'marker']);
    } finally {
      await context.clearCookies();
    }
  }, 30_000);

  test('a pgmesh channel meets Mercure: what the server API publishes to it reaches subscribers whose token grants it as a topic, and no one else', async () => {
    const channel = `news-${random()}`;
    const marker = `marker-${random()}`;
    const publishPgmesh = (d: string) => fetch(`${A.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: channel, d }) });
    await listen([['match', channel], ['match', marker]]);
    expect((await publishPgmesh('for the anonymous?')).status).toBe(200);
    expect((await receivedBefore(marker, A.url)).map((e) => e.data)).toEqual(['marker']);
    await context.addCookies([{ name: 'mercureAuthorization', value: await accessToken([{ actions: ['subscribe'], topics: [channel] }]), url: B.url }]);
    try {
      await listen([['match', channel], ['match', `${marker}-2`]]);
      const published = (await (await publishPgmesh('breaking')).json()) as { id: number };
      const got = await receivedBefore(`${marker}-2`, A.url);
      expect(got.filter((e) => e.data !== 'marker')).toEqual([{ type: 'message', id: `#${published.id}`, data: 'breaking' }]);
    } finally {
      await context.clearCookies();
    }
  }, 30_000);

  test("a subscriber's stream ends when its token expires", async () => {
    const short = await accessToken([{ actions: ['subscribe'], topics: ['*'] }], {}, '2s');
    const response = await fetch(`${B.url}/.well-known/mercure?match=anything`, { headers: { authorization: `Bearer ${short}` } });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const started = Date.now();
    while (!(await reader.read()).done);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 20_000);

  test('CORS: an allowed origin gets its origin back with credentials; another gets nothing', async () => {
    const allowed = await fetch(`${B.url}/.well-known/mercure`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    const other = await fetch(`${B.url}/.well-known/mercure`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const published = await fetch(`${A.url}/.well-known/mercure`, { method: 'POST', headers: { origin: 'https://app.example', authorization: `Bearer ${everything}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'topic=cors&data=x' });
    expect(published.headers.get('access-control-allow-origin')).toBe('https://app.example');
  });
});

describe('active subscriptions', () => {
  /** Reads a stream until `until` holds for what came so far; resolves with the parsed `mercure` events. */
  async function watch(base: string, query: string, token: string) {
    const controller = new AbortController();
    const response = await fetch(`${base}/.well-known/mercure?${query}`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    const reader = response.body!.getReader();
    let text = '';
    const events = () =>
      text
        .split('\n\n')
        .filter((e) => e.includes('event: mercure'))
        .map((e) => JSON.parse(/data: (.*)/.exec(e)![1]!) as Record<string, unknown>);
    return {
      events,
      async until(done: (events: Record<string, unknown>[]) => boolean) {
        const deadline = Date.now() + 10_000;
        while (!done(events())) {
          const chunk = await reader.read();
          if (chunk.done || Date.now() > deadline) throw new Error(`stream ${response.status} ended or stalled; so far: ${text}`);
          text += new TextDecoder().decode(chunk.value);
        }
      },
      close: () => controller.abort(),
    };
  }

  test('1.0: a subscription that starts and ends is announced (private, type mercure) with its payload; the API on the other instance lists it meanwhile', async () => {
    const topic = `https://example.com/rooms/${random()}`;
    const watcherToken = await accessToken([{ actions: ['subscribe'], topics: [{ match: '/.well-known/mercure/subscriptions/:type/:match/:subscriber', match_type: 'urlpattern' }] }]);
    const watcher = await watch(B.url, `match_urlpattern=${encodeURIComponent('/.well-known/mercure/subscriptions/:type/:match/:subscriber')}`, watcherToken);
    const subscriberToken = await accessToken([{ actions: ['subscribe'], topics: [topic], payload: { room: 'blue' } }]);
    const controller = new AbortController();
    const subscribed = await fetch(`${A.url}/.well-known/mercure?match=${encodeURIComponent(topic)}`, { headers: { authorization: `Bearer ${subscriberToken}` }, signal: controller.signal });
    expect(subscribed.status).toBe(200);
    const mine = (events: Record<string, unknown>[]) => events.filter((e) => e.match === topic);
    await watcher.until((events) => mine(events).length === 1);
    const [started] = mine(watcher.events());
    expect(started).toMatchObject({ type: 'subscription', match_type: 'exact', match: topic, active: true, payload: { room: 'blue' } });
    expect(started!.id).toBe(`/.well-known/mercure/subscriptions/exact/${encodeURIComponent(topic)}/${encodeURIComponent(started!.subscriber as string)}`);

    const api = async (path: string, token = watcherToken) => {
      const response = await fetch(`${B.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, link: response.headers.get('link'), body: response.status === 200 ? ((await response.json()) as Record<string, unknown>) : null };
    };
    const collectionPath = `/.well-known/mercure/subscriptions/exact/${encodeURIComponent(topic)}`;
    const everyone = await api('/.well-known/mercure/subscriptions', everything);
    expect(everyone.body).toMatchObject({ id: '/.well-known/mercure/subscriptions', type: 'subscriptions' });
    expect((everyone.body!.subscriptions as { match: string }[]).some((d) => d.match === topic)).toBe(true);
    expect(everyone.link).toMatch(/^<[^>]+\/\.well-known\/mercure>; rel="mercure"; last-event-id="#\d+"; type="mercure"; content-type="application\/json"$/);
    expect((await api(collectionPath, everything)).body).toEqual({ id: collectionPath, type: 'subscriptions', subscriptions: [{ ...started, active: true }] });
    expect((await api(started!.id as string)).body).toEqual(started!);
    expect((await api(`${collectionPath}/${encodeURIComponent('urn:uuid:00000000-0000-0000-0000-000000000000')}`)).status).toBe(404);
    // The watcher's token grants subscription paths of three segments only: not the collection.
    expect((await api('/.well-known/mercure/subscriptions')).status).toBe(403);

    controller.abort();
    await watcher.until((events) => mine(events).length === 2);
    expect(mine(watcher.events())[1]).toEqual({ ...started, active: false });
    watcher.close();
  }, 30_000);

  test('0.x: the same in 0.x shapes: topic/subscriber paths and JSON-LD documents', async () => {
    const topic = `https://example.com/books/${random()}`;
    const watcherToken = await oldToken({ subscribe: ['/.well-known/mercure/subscriptions/{topic}/{subscriber}', '/.well-known/mercure/subscriptions'] });
    const watcher = await watch(B.url, `topic=${encodeURIComponent('/.well-known/mercure/subscriptions/{topic}/{subscriber}')}`, watcherToken);
    const controller = new AbortController();
    expect((await fetch(`${A.url}/.well-known/mercure?topic=${encodeURIComponent(topic)}`, { signal: controller.signal })).status).toBe(200);
    const mine = (events: Record<string, unknown>[]) => events.filter((e) => e.topic === topic);
    await watcher.until((events) => mine(events).length === 1);
    const [started] = mine(watcher.events());
    expect(started).toMatchObject({ '@context': 'https://mercure.rocks/', type: 'Subscription', topic, active: true });
    expect(started!.id).toBe(`/.well-known/mercure/subscriptions/${encodeURIComponent(topic)}/${encodeURIComponent(started!.subscriber as string)}`);
    const listed = await fetch(`${B.url}/.well-known/mercure/subscriptions`, { headers: { authorization: `Bearer ${watcherToken}` } });
    expect(await listed.json()).toMatchObject({ '@context': 'https://mercure.rocks/', type: 'Subscriptions', lastEventID: expect.stringMatching(/^#\d+$/) });
    controller.abort();
    await watcher.until((events) => mine(events).length === 2);
    watcher.close();
  }, 30_000);

  test('the subscriptions API wants a token (401), one that grants the path (403)', async () => {
    expect((await fetch(`${B.url}/.well-known/mercure/subscriptions`)).status).toBe(401);
    const other = await accessToken([{ actions: ['subscribe'], topics: ['https://example.com/other'] }]);
    expect((await fetch(`${B.url}/.well-known/mercure/subscriptions`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(403);
  });
});

describe("Symfony's own publisher (symfony/mercure 0.6 from Debian, run by php-cli)", () => {
  const script = join(ROOT, 'examples', 'symfony', 'publish.php');
  const symfony = (args: string[]) => runPhp(script, args, { MERCURE_URL: `${A.url}/.well-known/mercure`, MERCURE_JWT_SECRET: KEY });

  test.skipIf(!hasSymfonyMercure)('Hub::publish() of an Update reaches an EventSource on the other instance, with its id and type; the answer is the id', async () => {
    const topic = `https://example.com/books/${random()}`;
    const marker = `marker-${random()}`;
    await listen([['match', topic], ['match', marker]]);
    await page.evaluate(() => (window as any).source.addEventListener('book.updated', (e: MessageEvent) => (window as any).got.push({ type: e.type, id: e.lastEventId, data: e.data })));
    const sent = await symfony([topic, '{"title":"Mercure"}', '', `book-1-${topic}`, 'book.updated']);
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toBe(`book-1-${topic}\n`);
    const plain = await symfony([topic, 'plain']);
    expect(plain.stdout).toMatch(/^#\d+\n$/);
    const got = await receivedBefore(marker, A.url);
    expect(got.filter((e) => e.data !== 'marker')).toEqual([
      { type: 'book.updated', id: `book-1-${topic}`, data: '{"title":"Mercure"}' },
      { type: 'message', id: plain.stdout.trim(), data: 'plain' },
    ]);
  }, 30_000);

  test.skipIf(!hasSymfonyMercure)('a private Update reaches only a subscriber whose cookie grants its topic', async () => {
    const topic = `https://example.com/orders/${random()}`;
    const marker = `marker-${random()}`;
    await listen([['topic', topic], ['topic', marker]]);
    await symfony([topic, 'secret order', 'private']);
    expect((await receivedBefore(marker, A.url)).map((e) => e.data)).toEqual(['marker']);
    // The cookie a Symfony app sets for its page (the Authorization helper's, mercureAuthorization), 0.x claims.
    await context.addCookies([{ name: 'mercureAuthorization', value: await oldToken({ subscribe: [topic, `${marker}-2`] }), url: B.url }]);
    try {
      await listen([['topic', topic], ['topic', `${marker}-2`]]);
      await symfony([topic, 'secret order 2', 'private']);
      expect((await receivedBefore(`${marker}-2`, A.url)).map((e) => e.data)).toEqual(['secret order 2', 'marker']);
    } finally {
      await context.clearCookies();
    }
  }, 30_000);

  test.skipIf(!hasSymfonyMercure)('a wrong secret: the publisher fails loudly with the 401', async () => {
    const refused = await runPhp(script, ['a', 'x'], { MERCURE_URL: `${A.url}/.well-known/mercure`, MERCURE_JWT_SECRET: 'not-the-secret' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('401');
  }, 30_000);
});

describe('asymmetric keys: a PEM public key for publishers, a JWKS for subscribers', async () => {
  const publisherKeys = await generateKeyPair('ES256');
  const subscriberKeys = await generateKeyPair('RS256');
  const jwks = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: async () => Response.json({ keys: [{ ...(await exportJWK(subscriberKeys.publicKey)), kid: 'sub-1', alg: 'RS256', use: 'sig' }] }) });
  const hub = await startTestMesh({
    MERCURE_PUBLISHER_JWT_KEY: (await exportSPKI(publisherKeys.publicKey)).replaceAll('\n', '\\n'),
    MERCURE_PUBLISHER_JWT_ALG: 'ES256',
    MERCURE_SUBSCRIBER_JWKS_URL: `http://127.0.0.1:${jwks.port}/jwks.json`,
  });
  afterAll(() => jwks.stop(true));

  test('an ES256 publisher token is accepted, one signed by another key is not; an RS256 subscriber token from the JWKS reads a private update', async () => {
    const signedBy = (key: CryptoKey, alg: string, claims: Record<string, unknown>, kid?: string) => new SignJWT(claims).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).sign(key);
    const reader = await signedBy(subscriberKeys.privateKey, 'RS256', { mercure: { subscribe: ['vault'] } }, 'sub-1');
    const controller = new AbortController();
    const stream = await fetch(`${hub.url}/.well-known/mercure?topic=vault`, { headers: { authorization: `Bearer ${reader}` }, signal: controller.signal });
    expect(stream.status).toBe(200);
    const publisher = await signedBy(publisherKeys.privateKey, 'ES256', { mercure: { publish: ['*'] } });
    expect((await publish(hub.url, publisher, { topic: 'vault', data: 'gold', private: 'on' })).status).toBe(200);
    const intruder = await signedBy((await generateKeyPair('ES256')).privateKey, 'ES256', { mercure: { publish: ['*'] } });
    expect((await publish(hub.url, intruder, { topic: 'vault', data: 'lead' })).status).toBe(401);
    const body = stream.body!.getReader();
    let text = '';
    while (!text.includes('gold')) {
      const chunk = await body.read();
      if (chunk.done) throw new Error(`stream ended: ${text}`);
      text += new TextDecoder().decode(chunk.value);
    }
    controller.abort();
    expect(text).not.toContain('lead');
    // A publisher's key is not a subscriber's: an ES256 token cannot read here.
    expect((await fetch(`${hub.url}/.well-known/mercure?topic=vault`, { headers: { authorization: `Bearer ${publisher}` } })).status).toBe(401);
  });

  test('a key set that cannot be fetched is 503 (the hub is unwell), not 401 (the token is fine)', async () => {
    const down = await startTestMesh({ MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_SUBSCRIBER_JWKS_URL: 'http://127.0.0.1:9/jwks.json' });
    const token = await new SignJWT({ mercure: { subscribe: ['*'] } }).setProtectedHeader({ alg: 'RS256', kid: 'k' }).sign(subscriberKeys.privateKey);
    const response = await fetch(`${down.url}/.well-known/mercure?topic=vault`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(503);
  });
});

// A hub with anonymous subscribers off (the default), in this process.
const closed = await startTestMesh({ MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_ISSUERS: ISSUER, MERCURE_AUDIENCE: AUDIENCE });

describe('refusals, with the answers RFC 6750 and the protocol give', () => {
  const get = async (query: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${closed.url}/.well-known/mercure?${query}`, { headers });
    await response.body?.cancel();
    return { status: response.status, challenge: response.headers.get('www-authenticate') };
  };

  test('publishing: no token 401 with a bare challenge; a bad token 401 invalid_token; a token short of a topic 403 insufficient_scope; a malformed header 400 invalid_request', async () => {
    expect(await publish(closed.url, null, { topic: 'a', data: 'x' })).toMatchObject({ status: 401, challenge: 'Bearer realm="mercure"' });
    const forged = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('not-the-key-0123456789'));
    expect(await publish(closed.url, forged, { topic: 'a', data: 'x' })).toMatchObject({ status: 401, challenge: 'Bearer realm="mercure", error="invalid_token"' });
    const onlyA = await accessToken([{ actions: ['publish'], topics: ['a'] }]);
    expect(await publish(closed.url, onlyA, { topic: 'a', data: 'x' })).toMatchObject({ status: 200 });
    // Every topic must be granted, alternate ones too.
    expect(await publish(closed.url, onlyA, { topic: ['a', 'b'], data: 'x' })).toMatchObject({ status: 403, challenge: 'Bearer realm="mercure", error="insufficient_scope"' });
    expect(await publish(closed.url, null, { topic: 'a' }, { authorization: 'Basic eDp5' })).toMatchObject({ status: 400, challenge: 'Bearer realm="mercure", error="invalid_request"' });
    const subscriberOnly = await oldToken({ subscribe: ['*'] });
    expect(await publish(closed.url, subscriberOnly, { topic: 'a' })).toMatchObject({ status: 403 });
  });

  test('1.0 tokens: a wrong audience or issuer, no exp, a matcher type the hub does not know, or an expired token are invalid_token', async () => {
    const grants = [{ actions: ['publish'], topics: ['*'] }];
    const typed = (claims: Record<string, unknown>) => new SignJWT({ authorization_details: grants.map((g) => ({ type: 'https://mercure.rocks/authorization-detail', ...g, topics: [{ match: '*' }] })), ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(secret);
    for (const token of [
      await typed({ iss: ISSUER, aud: 'https://elsewhere/.well-known/mercure', exp: 4102444800 }),
      await typed({ iss: 'https://intruder', aud: AUDIENCE, exp: 4102444800 }),
      await typed({ iss: ISSUER, aud: AUDIENCE }),
      await typed({ iss: ISSUER, aud: AUDIENCE, exp: 1 }),
      await accessToken([{ actions: ['publish'], topics: [{ match: 'x', match_type: 'regex' }] }]),
    ]) {
      expect(await publish(closed.url, token, { topic: 'a' })).toMatchObject({ status: 401, challenge: 'Bearer realm="mercure", error="invalid_token"' });
    }
  });

  test('publishing: no topic, the * wildcard, a topic under the hub, type "mercure", ids starting with # or "earliest", a bad retry, or a form of another type are 400', async () => {
    const refused: Record<string, string>[] = [
      { data: 'x' },
      { topic: '*' },
      { topic: '/.well-known/mercure/subscriptions/x' },
      { topic: 'https://anywhere.example/.well-known/%6Dercure/subscriptions' },
      { topic: 'https://anywhere.example/.well-known/mercure/../mercure/x' },
      { topic: 'a', type: 'mercure' },
      { topic: 'a', id: '#1' },
      { topic: 'a', id: 'earliest' },
      { topic: 'a', retry: '10s' },
      { topic: 'a\u0007' },
    ];
    for (const fields of refused) {
      expect({ fields, status: (await publish(closed.url, everything, fields)).status }).toEqual({ fields, status: 400 });
    }
    const json = await fetch(`${closed.url}/.well-known/mercure`, { method: 'POST', headers: { authorization: `Bearer ${everything}`, 'content-type': 'application/json' }, body: '{"topic":"a"}' });
    expect(json.status).toBe(400);
  });

  test('subscribing: without a token on a hub with anonymous off 401; an unknown match* parameter, a bad URL pattern, a regular-expression group or no matcher 400', async () => {
    expect(await get('match=a')).toEqual({ status: 401, challenge: 'Bearer realm="mercure"' });
    expect(await get('match=a', { authorization: `Bearer ${everything}` })).toEqual({ status: 200, challenge: null });
    expect((await get('match_regex=a', { authorization: `Bearer ${everything}` })).status).toBe(400);
    expect((await get('MATCHES=a', { authorization: `Bearer ${everything}` })).status).toBe(400);
    expect((await get(`match_urlpattern=${encodeURIComponent('https://example.com/{foo')}`, { authorization: `Bearer ${everything}` })).status).toBe(400);
    expect((await get(`match_urlpattern=${encodeURIComponent('https://example.com/:id(.*)+')}`, { authorization: `Bearer ${everything}` })).status).toBe(400);
    expect((await get('', { authorization: `Bearer ${everything}` })).status).toBe(400);
    expect((await get(`topic=${encodeURIComponent('https://example.com/{a}{b}')}`, { authorization: `Bearer ${everything}` })).status).toBe(400);
  });
});

describe('docs/mercure.md as printed', () => {
  test("its settings block is a configuration pgmesh accepts, with the hub on and anonymous subscribers", () => {
    const page = readFileSync(join(ROOT, 'docs', 'mercure.md'), 'utf8');
    const block = [...page.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('MERCURE_PUBLISHER_JWT_KEY='))!;
    const env = Object.fromEntries(block.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => {
      const [name, value] = l.replace(/\s+#.*$/, '').split(/=(.*)/s) as [string, string];
      return [name, value.replace(/^'|'$/g, '')];
    }));
    const config = loadConfig(env);
    expect(config.MERCURE_PUBLISHER_JWT_KEY).toBe(KEY);
    expect(config.MERCURE_ANONYMOUS).toBe(true);
    expect(config.MERCURE_CORS_ORIGINS).toEqual(['https://app.example.com']);
  });
});
