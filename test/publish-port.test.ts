/**
 * MESH_PUBLISH_PORT, on every runtime: POST /v1/mesh/publish served by a
 * thread of its own reaches the instance's clients (and every other
 * instance's), answers bad requests exactly as the main port does, is counted
 * in the instance's /metrics, keeps answering through a drain, and comes back
 * if the thread ever ends. The Pusher HTTP API and Mercure's publish are served
 * there too.
 */
import { describe, expect, test } from 'bun:test';
import { SignJWT } from 'jose';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabase } from './harness/postgres.ts';
import { RUNTIMES, logLines, runToExit, startProcess, type MeshProcess } from './harness/process.ts';
import { startTestMesh } from './harness/mesh.ts';
import { pusherClient, pusherServer } from './harness/pusher.ts';
import { rawEventStream } from './harness/raw-sse.ts';
import { startTcpProxy } from './harness/tcp-proxy.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';
import { connect, onChannel, type WsClient } from './harness/ws-client.ts';

const KEY = 'p'.repeat(32);
const json = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };

async function subscriber(mesh: MeshProcess, uid: string, channel: string): Promise<WsClient> {
  const ws = await connect(`${mesh.url.replace('http', 'ws')}/v1/ws?format=envelope`);
  expect(await ws.request({ op: 'auth', token: await token(uid) })).toMatchObject({ success: true });
  expect(await ws.request({ op: 'subscribe', channels: [channel] })).toMatchObject({ success: true });
  return ws;
}

const post = (url: string, body: string, headers: Record<string, string> = json) => fetch(url, { method: 'POST', headers, body });

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(((await res.json()) as { code: string }).code).toBe(code);
}

/** The sum of a metric's samples whose labels include `label` (`code="ERR_…"`), in a Prometheus page. */
function sampleOf(text: string, name: string, label = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (label !== '' && !line.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe.each(RUNTIMES)('the publish port on %s', (runtime) => {
  test(
    'publishes reach clients on this instance and another, with the same answers and errors as the main port, counted in /metrics',
    async () => {
      const db = await freshDatabase();
      const env = { DATABASE_URL: db, MESH_API_KEY: KEY, MESH_PUBLISH_PORT: '0', MESH_LOG: 'info' };
      const [a, b] = await Promise.all([startProcess(runtime, { ...env, MESH_INSTANCE_ID: `pp-a-${runtime}` }), startProcess(runtime, { ...env, MESH_INSTANCE_ID: `pp-b-${runtime}` })]);
      try {
        expect(a.publishOrigin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(a.publishOrigin).not.toBe(new URL(a.url).origin);
        expect(logLines(a.stderr()).find((l) => l.msg === 'started')?.publishPort).toBe(Number(new URL(a.publishOrigin!).port));
        // The thread's own lines go to the same log, saying which thread they come from.
        expect(logLines(a.stderr()).find((l) => l.msg === 'publish port listening')).toMatchObject({ level: 'info', instance: `pp-a-${runtime}`, thread: 'publish', port: Number(new URL(a.publishOrigin!).port) });
        const publishUrl = `${a.publishOrigin}/v1/mesh/publish`;
        const here = await subscriber(a, 'pp-here', 'room_pp');
        const there = await subscriber(b, 'pp-there', 'room_pp');

        const one = (await (await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'first' }))).json()) as { success: boolean; id: number; ids: number[] };
        expect(one).toEqual({ success: true, id: one.id, ids: [one.id] });
        const batch = (await (await post(publishUrl, JSON.stringify([{ c: 'room_pp', d: 'second' }, { channel: 'room_pp', data: { n: 3 } }]))).json()) as { ids: number[] };
        expect(batch.ids).toEqual([one.id + 1, one.id + 2]);
        for (const ws of [here, there]) {
          await ws.until(() => ws.frames.filter(onChannel('room_pp')).length === 3);
          expect(ws.frames.filter(onChannel('room_pp')).map((f) => (f as { data: unknown }).data)).toEqual(['first', 'second', '{"n":3}']);
        }
        // Ids are the cluster's one sequence: the main port's next publish follows the thread's.
        const main = (await (await post(`${a.url}/v1/mesh/publish`, JSON.stringify({ c: 'room_pp', d: 'main' }))).json()) as { id: number };
        expect(main.id).toBe(one.id + 3);

        // Bad requests: the main port's codes, and the thread goes on.
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'x' }), { 'content-type': 'application/json' }), 401, 'ERR_BAD_API_KEY');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'x' }), { ...json, authorization: `Bearer ${'z'.repeat(32)}` }), 401, 'ERR_BAD_API_KEY');
        await expectError(await post(publishUrl, '{"c":'), 400, 'ERR_BAD_JSON');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp' })), 400, 'ERR_BAD_ARGS');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'bad channel', d: 'x' })), 400, 'ERR_BAD_CHANNEL');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'a\u0000b' })), 400, 'ERR_BAD_TEXT');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp', d: JSON.parse(`${'['.repeat(5000)}${']'.repeat(5000)}`) })), 400, 'ERR_TOO_DEEP');
        await expectError(await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'x'.repeat(10 * 1024 * 1024) })), 413, 'ERR_TOO_LARGE');
        await expectError(await fetch(`${a.publishOrigin}/v1/mesh/users`, { headers: json }), 404, 'ERR_NOT_FOUND');
        const health = await fetch(`${a.publishOrigin}/healthz`);
        expect(health.status).toBe(200);
        expect(await health.json()).toEqual({ ok: true, store: 'postgres', serves: 'publish' });
        expect((await (await post(publishUrl, JSON.stringify({ c: 'room_pp', d: 'after' }))).json()) as object).toMatchObject({ success: true, id: one.id + 4 });
        await here.next((f) => onChannel('room_pp')(f) && (f as { data: unknown }).data === 'after');

        // The thread's publishes and errors are the instance's: its /metrics counts them within a tally (a second).
        const metrics = async () => (await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
        await pollUntil(async () => sampleOf(await metrics(), 'pgmesh_messages_published_total') === 5, 10_000, 'five messages published counted');
        const page = await metrics();
        expect(sampleOf(page, 'pgmesh_errors_total', 'code="ERR_BAD_API_KEY"')).toBe(2);
        expect(sampleOf(page, 'pgmesh_errors_total', 'code="ERR_TOO_LARGE"')).toBe(1);
        expect(sampleOf(page, 'pgmesh_errors_total', 'code="ERR_NOT_FOUND"')).toBe(1);
        expect(sampleOf(page, 'pgmesh_publish_seconds_count')).toBe(4);
        here.close();
        there.close();
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    },
    60_000,
  );

  test(
    'publishes are answered and delivered through a drain, and the instance then exits',
    async () => {
      const mesh = await startProcess(runtime, { DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0', MESH_DRAIN_TIME: '2s' });
      const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => subscriber(mesh, `pp-drain-${i}`, 'room_drain')));
      let closed = 0;
      for (const ws of clients) void ws.closed.then(() => closed++);
      const publishUrl = `${mesh.publishOrigin}/v1/mesh/publish`;
      const stopped = mesh.stop('SIGTERM');
      let answered = 0;
      // While the drain closes the clients over its 2 s, every publish is answered (until half are gone: the
      // window's middle, well before the instance stops).
      while (closed < clients.length / 2) {
        const res = await post(publishUrl, JSON.stringify({ c: 'room_drain', d: String(answered) }), { 'content-type': 'application/json' });
        expect(res.status).toBe(200);
        answered++;
        await new Promise((resolve) => setTimeout(resolve, 20)); // the publisher's own pace
      }
      expect(answered).toBeGreaterThan(10);
      expect(await stopped).toBe(0);
      const codes = await Promise.all(clients.map(async (ws) => (await ws.closed).code));
      expect(codes.filter((code) => code === 1012).length).toBeGreaterThanOrEqual(clients.length / 2);
      // Each client got what was published before its close, in order and once.
      for (const ws of clients) {
        const got = ws.frames.filter(onChannel('room_drain')).map((f) => Number((f as { data: string }).data));
        expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));
      }
      // And the clients the drain closed last got them all.
      expect(Math.max(...clients.map((ws) => ws.frames.filter(onChannel('room_drain')).length))).toBe(answered);
    },
    60_000,
  );
});

describe('starting the publish port', () => {
  test('on the embedded Postgres server, the thread connects through its socket, as `npm start` runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-pp-'));
    const mesh = await startProcess('node', { MESH_DATA_DIR: dir, MESH_PUBLISH_PORT: '0' });
    try {
      const ws = await subscriber(mesh, 'pp-embedded', 'room_embedded');
      const res = await post(`${mesh.publishOrigin}/v1/mesh/publish`, JSON.stringify({ c: 'room_embedded', d: 'hello' }), { 'content-type': 'application/json' });
      expect(res.status).toBe(200);
      expect(await ws.next(onChannel('room_embedded'))).toMatchObject({ data: 'hello' });
      ws.close();
    } finally {
      expect(await mesh.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test('a publish port already taken stops the start, saying why', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const { code, stderr } = await runToExit('bun', { DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: String(port) });
      expect(code).toBe(1);
      expect(stderr).toContain('pgmesh: cannot start: publish thread:');
    } finally {
      taken.close();
    }
  });

  test('with PGlite the setting is refused at start, naming it', async () => {
    const { code, stderr } = await runToExit('bun', { MESH_PUBLISH_PORT: '0', MESH_EMBEDDED: 'pglite' });
    expect(code).toBe(1);
    expect(stderr).toContain('pgmesh: invalid setting MESH_PUBLISH_PORT: needs a Postgres server');
  });
});

describe('the Pusher HTTP API on the publish port', () => {
  test('the official server library triggers, queries and terminates through it; pusher-js on the main port sees it', async () => {
    const app = { id: '1001', key: 'pp-key', secret: 'pp-secret-0123456789' };
    const mesh = await startTestMesh({ DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0', PUSHER_APPS: `${app.id}:${app.key}:${app.secret}` });
    const sdk = pusherServer(mesh.publishThread!.port, app);
    const alice = await pusherClient(mesh.port, app, { member: { user_id: 'alice', user_info: { name: 'Alice' } } });
    const bob = await pusherClient(mesh.port, app, { member: { user_id: 'bob' } });
    try {
      expect(await alice.subscribe('presence-room')).toEqual({ ok: true });
      expect(await bob.subscribe('presence-room')).toEqual({ ok: true });
      expect(await alice.subscribe('orders')).toEqual({ ok: true });
      // A trigger with info, answered as Pusher does; toOthers() leaves Bob's socket out.
      const res = await sdk.trigger(['presence-room', 'orders'], 'order.shipped', { id: 7 }, { socket_id: bob.socketId(), info: 'subscription_count,user_count' });
      expect(await res.json()).toEqual({ channels: { 'presence-room': { subscription_count: 2, user_count: 2 }, orders: { subscription_count: 1 } } });
      await alice.until(() => alice.events('presence-room').length === 1 && alice.events('orders').length === 1);
      expect(alice.events('orders')).toEqual([{ channel: 'orders', event: 'order.shipped', data: { id: 7 } }]);
      await sdk.triggerBatch([{ channel: 'presence-room', name: 'batch', data: 'x' }]);
      await bob.until(() => bob.events('presence-room').length === 1);
      expect(bob.events('presence-room')).toEqual([{ channel: 'presence-room', event: 'batch', data: 'x' }]);
      // The queries read the cluster's presence.
      expect(await (await sdk.get({ path: '/channels/presence-room/users' })).json()).toEqual({ users: [{ id: 'alice' }, { id: 'bob' }] });
      expect(await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json()).toEqual({ channels: { 'presence-room': { user_count: 2 } } });
      // terminate_connections reaches the socket on the main loop.
      await sdk.terminateUserConnections('bob');
      await bob.until(() => bob.states.includes('disconnected') || bob.states.includes('unavailable'));
      const wrong = pusherServer(mesh.publishThread!.port, { ...app, secret: 'wrong-secret-0123456789' });
      await expect(wrong.trigger('orders', 'x', 'y')).rejects.toMatchObject({ status: 401 });
    } finally {
      alice.close();
      bob.close();
    }
  }, 30_000);
});

describe('the publish port when the database stops answering', () => {
  test('its /healthz says so within its deadline, and says healthy again once the connection is replaced', async () => {
    const url = new URL(await freshDatabase());
    const proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    const mesh = await startTestMesh({ DATABASE_URL: url.toString(), MESH_PUBLISH_PORT: '0' }, { stopAfterAll: false });
    try {
      const health = `http://127.0.0.1:${mesh.publishThread!.port}/healthz`;
      expect((await fetch(health)).status).toBe(200);
      // Half-open: no byte passes, nothing is closed. The check must not hang with it.
      proxy.freezeOpenConnections();
      const started = performance.now();
      const frozen = await fetch(health);
      expect(frozen.status).toBe(503);
      expect(await frozen.json()).toMatchObject({ ok: false, code: 'ERR_UNAVAILABLE' });
      expect(performance.now() - started).toBeLessThan(5000);
      // The ping's missed deadline replaces the connection; new ones pass the proxy.
      await pollUntil(async () => (await fetch(health)).status === 200, 25_000, 'healthy again');
      const res = await post(`http://127.0.0.1:${mesh.publishThread!.port}/v1/mesh/publish`, JSON.stringify({ c: 'room_back', d: 'x' }), { 'content-type': 'application/json' });
      expect(res.status).toBe(200);
    } finally {
      await mesh.stop();
      await proxy.close();
    }
  }, 40_000);
});

describe('a publish thread that ends', () => {
  test('is started again on the same port', async () => {
    const mesh = await startTestMesh({ DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0' });
    const thread = mesh.publishThread!;
    const port = thread.port;
    const publish = (d: string) => post(`http://127.0.0.1:${port}/v1/mesh/publish`, JSON.stringify({ c: 'room_again', d }), { 'content-type': 'application/json' });
    expect((await publish('before')).status).toBe(200);
    await thread.kill();
    await pollUntil(async () => thread.restarts === 1, 10_000, 'the thread started again');
    expect(thread.port).toBe(port);
    const res = await publish('after');
    expect(res.status).toBe(200);
    const history = (await (await fetch(`${mesh.url}/v1/mesh/channels/room_again/history?since=0`)).json()) as { messages: { data: string }[] };
    expect(history.messages.map((m) => m.data)).toEqual(['before', 'after']);
  }, 30_000);
});

describe('Mercure on the publish port', () => {
  const MERCURE_KEY = '!ChangeThisMercureHubJWTSecretKey!';
  const HUB = 'https://hub.example/.well-known/mercure';
  const ISSUER = 'https://app.example';
  const TOPIC = 'https://example.com/books/1';
  const secret = new TextEncoder().encode(MERCURE_KEY);
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const update = (origin: string, token: string | null, body: string, type = 'application/x-www-form-urlencoded') =>
    fetch(`${origin}/.well-known/mercure`, { method: 'POST', headers: { 'content-type': type, ...(token === null ? {} : { authorization: `Bearer ${token}` }) }, body });
  /** A Mercure 1.0 access token granting `actions` on `topics`, for the hub `aud` names. */
  const accessToken = (aud: string, topics: string[], actions = ['publish']) =>
    new SignJWT({ authorization_details: [{ type: 'https://mercure.rocks/authorization-detail', actions, topics: topics.map((match) => ({ match })) }] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setAudience(aud)
      .setIssuer(ISSUER)
      .setExpirationTime('1h')
      .sign(secret);

  test("Symfony's updates are taken there with the hub's tokens and answers, and reach subscribers on the main port", async () => {
    const mesh = await startTestMesh({ DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0', MERCURE_PUBLISHER_JWT_KEY: MERCURE_KEY, MERCURE_PUBLIC_URL: HUB, MERCURE_ISSUERS: ISSUER, MERCURE_ANONYMOUS: '1' });
    const thread = `http://127.0.0.1:${mesh.publishThread!.port}`;
    const stream = await rawEventStream(mesh.port, `/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`);
    try {
      // Mercure 0.x's token, as Symfony's HubInterface signs it.
      const old = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(secret);
      const first = await update(thread, old, form({ topic: TOPIC, data: 'first edition', id: 'urn:uuid:b1' }));
      expect(first.status).toBe(200);
      expect(await first.text()).toBe('urn:uuid:b1');
      // A 1.0 token names the hub's public URL: the same audience on either port.
      const second = await update(thread, await accessToken(HUB, [TOPIC]), form({ topic: TOPIC, data: 'second edition' }));
      expect(second.status).toBe(200);
      const id = await second.text();
      expect(id).toMatch(/^#\d+$/);
      await stream.until(() => stream.text().includes('data: second edition'));
      expect(stream.text()).toContain('id: urn:uuid:b1\ndata: first edition\n');
      expect(stream.text()).toContain(`id: ${id}\ndata: second edition\n`);

      // Refused as the hub refuses, with its challenges.
      const noToken = await update(thread, null, form({ topic: TOPIC, data: 'x' }));
      expect(noToken.status).toBe(401);
      expect(noToken.headers.get('www-authenticate')).toBe('Bearer realm="mercure"');
      const elsewhere = await update(thread, await accessToken('https://other.example/.well-known/mercure', [TOPIC]), form({ topic: TOPIC, data: 'x' }));
      expect(elsewhere.status).toBe(401);
      expect(elsewhere.headers.get('www-authenticate')).toContain('error="invalid_token"');
      const narrow = await update(thread, await accessToken(HUB, ['https://example.com/other']), form({ topic: TOPIC, data: 'x' }));
      expect(narrow.status).toBe(403);
      expect(narrow.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect((await update(thread, old, JSON.stringify({ topic: TOPIC }), 'application/json')).status).toBe(400);
      expect((await update(thread, old, form({ data: 'no topic' }))).status).toBe(400);
      expect((await update(thread, old, form({ topic: TOPIC, data: 'x'.repeat(2 * 1024 * 1024) }))).status).toBe(413);
      // Only the two updates went out.
      expect(stream.text().match(/^data: /gm)).toHaveLength(2);
    } finally {
      stream.socket.destroy();
    }
  }, 30_000);

  test('without MERCURE_PUBLIC_URL the publish port takes no updates, says so at start, and answers 404 naming what it serves', async () => {
    const mesh = await startProcess('bun', { DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0', MERCURE_PUBLISHER_JWT_KEY: MERCURE_KEY, MESH_LOG: 'warn' });
    try {
      expect(logLines(mesh.stderr()).some((l) => l.level === 'warn' && l.msg.includes('MERCURE_PUBLIC_URL'))).toBe(true);
      const res = await update(mesh.publishOrigin!, null, form({ topic: TOPIC, data: 'x' }));
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ code: 'ERR_NOT_FOUND', error: expect.stringContaining('POST /v1/mesh/publish and GET /healthz') });
    } finally {
      await mesh.stop();
    }
  }, 30_000);
});
