/** The SSE downlink + POST uplink, with a real EventSource client over real HTTP. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlStore } from '../src/store/sql-store.ts';
import { startTestMesh, type TestMesh } from './harness/mesh.ts';
import { RUNTIMES, startProcess } from './harness/process.ts';
import { openSse, type SseClient } from './harness/sse-client.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';

const mesh = await startTestMesh();

async function stream(m: TestMesh, uid: string, query: string, claims: Record<string, unknown> = {}): Promise<{ sse: SseClient; jwt: string }> {
  const jwt = await token(uid, claims);
  const sse = openSse(`${m.url}/v1/sse?${query}`, { authorization: `Bearer ${jwt}` });
  await sse.session();
  return { sse, jwt };
}

async function post(m: TestMesh, session: string, jwt: string, body: unknown): Promise<Response> {
  return fetch(`${m.url}/v1/sse/${session}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('SSE stream', () => {
  test('the first event names the session; API publishes arrive as id + verbatim data', async () => {
    const { sse } = await stream(mesh, 's1', 'channel=@user&channel=room_sse');
    expect(sse.events[0]!.type).toBe('session');
    const d = '{"event":"@user","data":{"msg":"hi"}}';
    const { id } = (await (await mesh.publish({ c: 'user:s1', d })).json()) as { id: number };
    const m = await sse.next((e) => e.type === 'message');
    expect(m).toEqual({ type: 'message', data: d, id: String(id) });
    await mesh.publish({ c: 'room_sse', d: 'room news' });
    expect((await sse.next((e) => e.type === 'message')).data).toBe('room news');
    sse.close();
  });

  test('multi-line data keeps its lines', async () => {
    const { sse } = await stream(mesh, 's2', 'channel=@user');
    await mesh.publish({ c: 'user:s2', d: 'line one\nline two\r\nline three\n\nafter a blank' });
    expect((await sse.next((e) => e.type === 'message')).data).toBe('line one\nline two\nline three\n\nafter a blank');
    sse.close();
  });

  test('headers for proxies, a retry hint and a comment heartbeat', async () => {
    const fast = await startTestMesh({ MESH_SSE_HEARTBEAT: '100ms', MESH_SSE_RETRY: '1500ms' });
    const res = await fetch(`${fast.url}/v1/sse?token=${await token('s3')}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toContain('no-cache');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    expect(res.headers.get('content-encoding')).toBeNull();
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5000;
    while (!text.includes(': ping\n\n') && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toStartWith('retry: 1500\nevent: session\ndata: {"session":"');
    expect(text).toContain(': ping\n\n');
    await reader.cancel();
  });

  test('the token may come as Bearer, ?token= or the cookie', async () => {
    const jwt = await token('s4');
    for (const [url, headers] of [
      [`${mesh.url}/v1/sse`, { authorization: `Bearer ${jwt}` }],
      [`${mesh.url}/v1/sse?token=${jwt}`, {}],
      [`${mesh.url}/v1/sse`, { cookie: `pgmesh_token=${jwt}` }],
    ] as const) {
      const sse = openSse(url, headers);
      expect(await sse.session()).toBeString();
      sse.close();
    }
  });

  test('refusals: no token 401, bad token 401 with its code, forbidden channel 403, bad Last-Event-ID 400', async () => {
    const none = await fetch(`${mesh.url}/v1/sse`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'ERR_NOT_AUTH' });
    const expired = await fetch(`${mesh.url}/v1/sse?token=${await token('s5', { exp: Math.floor(Date.now() / 1000) - 10 })}`);
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({ code: 'ERR_TOKEN_EXPIRED' });
    const forbidden = await fetch(`${mesh.url}/v1/sse?channel=user:other&token=${await token('s5')}`);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'ERR_FORBIDDEN' });
    const bad = await fetch(`${mesh.url}/v1/sse?lastEventId=abc&token=${await token('s5')}`);
    expect(bad.status).toBe(400);
  });
});

describe('POST uplink', () => {
  test('subscribe, publish and its aliases, ping, ack: the same ops and replies as the WebSocket', async () => {
    const { sse, jwt } = await stream(mesh, 's6', '');
    const session = await sse.session();
    const sub = await post(mesh, session, jwt, { op: 'subscribe', args: ['room_up'] });
    expect(sub.status).toBe(200);
    expect(await sub.json()).toMatchObject({ op: 'subscribe', success: true, result: true, channels: ['room_up'] });
    const replies = (await (await post(mesh, session, jwt, [
      { op: 'sendtoroom', args: ['room_up', 'via POST'] },
      { op: 'publish', channel: 'room_up', data: { n: 2 }, rid: 9 },
      { op: 'ping' },
      { op: 'launch' },
    ])).json()) as Record<string, unknown>[];
    expect(replies).toHaveLength(4);
    expect(replies[0]).toMatchObject({ op: 'sendtoroom', success: true });
    expect(replies[1]).toMatchObject({ op: 'publish', success: true, rid: 9 });
    expect(replies[2]).toEqual({ op: 'pong' });
    expect(replies[3]).toMatchObject({ op: 'launch', success: false, code: 11 });
    const first = await sse.next((e) => e.type === 'message');
    expect(JSON.parse(first.data)).toMatchObject({ event: 'subscribe', channel: 'room_up', data: 'via POST', uid: 's6' });
    const second = await sse.next((e) => e.type === 'message');
    expect(JSON.parse(second.data)).toMatchObject({ data: { n: 2 } });
    expect(await (await post(mesh, session, jwt, { op: 'ack', id: Number(second.id) })).json()).toMatchObject({ success: true });
    expect(await (await post(mesh, session, jwt, { op: 'unsubscribe', channel: 'room_up' })).json()).toMatchObject({ success: true });
    sse.close();
  });

  test('bad input: invalid JSON 400, an auth op is refused (use refresh)', async () => {
    const { sse, jwt } = await stream(mesh, 's7', '');
    const session = await sse.session();
    const bad = await post(mesh, session, jwt, '{"op":');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'ERR_BAD_JSON' });
    expect(await (await post(mesh, session, jwt, { op: 'auth', token: jwt })).json()).toMatchObject({ success: false, reason: 'ERR_FORBIDDEN' });
    sse.close();
  });

  test("another user's token cannot drive a session (403); an unknown or closed session is 404", async () => {
    const { sse, jwt } = await stream(mesh, 's8', '');
    const session = await sse.session();
    const hijack = await post(mesh, session, await token('mallory'), { op: 'subscribe', channel: '@user' });
    expect(hijack.status).toBe(403);
    expect(await hijack.json()).toMatchObject({ code: 'ERR_FORBIDDEN' });
    expect((await post(mesh, session, '', { op: 'ping' })).status).toBe(401);
    expect((await post(mesh, 'no-such-session', jwt, { op: 'ping' })).status).toBe(404);
    sse.close();
    // Closing the EventSource frees the session at once: the uplink answers 404.
    await mesh.sessionClosed(session);
    expect((await post(mesh, session, jwt, { op: 'ping' })).status).toBe(404);
  });
});

describe('resume', () => {
  test('Last-Event-ID after a server restart: nothing lost, nothing twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-sse-'));
    const first = await startTestMesh({ MESH_DATA_DIR: dir, MESH_SSE_RETRY: '200ms' }, { stopAfterAll: false });
    const port = String(first.port);
    const sse = openSse(`${first.url}/v1/sse?channel=room_r&token=${await token('s9')}`);
    await sse.session();
    await first.publish(['a', 'b'].map((d) => ({ c: 'room_r', d })));
    await sse.until(() => sse.messages().length === 2);
    await first.stop();
    // Published while the stream is down, then live after it reconnects by itself.
    const second = await startTestMesh({ MESH_DATA_DIR: dir, PORT: port });
    await second.publish(['c', 'd'].map((d) => ({ c: 'room_r', d })));
    await sse.until(() => sse.events.filter((e) => e.type === 'session').length === 2, 15_000);
    await second.publish({ c: 'room_r', d: 'e' });
    await sse.until(() => sse.messages().includes('e'), 10_000);
    expect(sse.messages()).toEqual(['a', 'b', 'c', 'd', 'e']);
    sse.close();
  }, 40_000);

  test('?lastEventId= for polyfills, and an expired position is announced, not skipped silently', async () => {
    const short = await startTestMesh({ MESH_RETENTION: '1ms' });
    const ids = ((await (await short.publish(['old-1', 'old-2'].map((d) => ({ c: 'room_x', d })))).json()) as { ids: number[] }).ids;
    // The janitor as it would run a second from now: both messages are past the 1 ms retention.
    expect(await (short.store as SqlStore).expire(Date.now() + 1000)).toBe(2);
    await short.publish({ c: 'room_x', d: 'new-1' });
    const sse = openSse(`${short.url}/v1/sse?channel=room_x&lastEventId=${ids[0]}&token=${await token('s10')}`);
    const expired = await sse.next((e) => e.type === 'expired');
    expect(JSON.parse(expired.data)).toEqual({ channel: 'room_x', since: ids[0], expiredUpTo: ids[1] });
    expect((await sse.next((e) => e.type === 'message')).data).toBe('new-1');
    sse.close();
  });
});

describe('token expiry on a stream', () => {
  test('a refresh before expiry keeps the stream open (the close at expiry is in transports.test.ts)', async () => {
    const exp2 = Math.ceil(Date.now() / 1000) + 2;
    const { sse, jwt } = await stream(mesh, 's12', 'channel=@user', { exp: exp2 });
    const session = await sse.session();
    expect(await (await post(mesh, session, jwt, { op: 'refresh', token: await token('s12') })).json()).toMatchObject({ success: true });
    setTimeout(() => void mesh.publish({ c: 'user:s12', d: 'after expiry' }), exp2 * 1000 + 500 - Date.now());
    expect((await sse.next((e) => e.type === 'message', 6000)).data).toBe('after expiry');
    expect(sse.events.some((e) => e.type === 'close')).toBe(false);
    sse.close();
  });
});

describe.each(RUNTIMES)('a stream whose client leaves while it is being authenticated, on %s', (runtime) => {
  test('leaves no session behind once the authentication finishes', async () => {
    // An AUTH_URL that answers only when told to: the client is gone by then.
    let asked!: () => void;
    const askedOnce = new Promise<void>((resolve) => (asked = resolve));
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const exchange = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch() {
        asked();
        await answered;
        return Response.json({ uid: 'leaver' });
      },
    });
    const mesh = await startProcess(runtime, { JWT_SECRET: '', AUTH_URL: `http://127.0.0.1:${exchange.port}/auth` });
    try {
      const sessions = async () => ((await (await fetch(`${mesh.url}/v1/mesh/stats`)).json()) as { sessions: { sse: number } }).sessions.sse;
      const client = connectTcp(Number(new URL(mesh.url).port), '127.0.0.1');
      client.on('error', () => {});
      client.write('GET /v1/sse?channel=room_leave&token=opaque-leaver HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
      await askedOnce;
      expect(await sessions()).toBe(1);
      client.destroy();
      answer();
      await pollUntil(async () => (await sessions()) === 0, 10_000, 'the session of the departed client is closed');
    } finally {
      await mesh.stop('SIGKILL');
      exchange.stop(true);
    }
  }, 60_000);
});
