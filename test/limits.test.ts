/**
 * The limits a public server needs, each hit from a real client: subscriptions
 * per connection (pgmesh and Pusher), connections per user and per address, a
 * deadline for Pusher sockets that hold nothing, acks only where subscribed.
 * Each refusal has its code and is counted in /metrics.
 */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { token } from './harness/tokens.ts';
import { connect, type Frame } from './harness/ws-client.ts';

const APP = { id: '5', key: 'limits-key', secret: 'limits-secret-0123456789' };
const mesh = await startTestMesh({
  MESH_MAX_SUBSCRIPTIONS: '3',
  MESH_MAX_CONNECTIONS_PER_USER: '2',
  PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}`,
  MESH_AUTH_TIMEOUT: '400ms',
});
const pusherEvent = (name: string) => (f: Frame) => typeof f === 'object' && f.event === name;

async function refusals(m = mesh): Promise<Record<string, number>> {
  const text = await (await fetch(`${m.url}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^pgmesh_limit_refusals_total\{[^}]*limit="(\w+)"[^}]*\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe('limits', () => {
  test('MESH_MAX_SUBSCRIPTIONS: a subscribe past it is ERR_LIMIT and changes nothing; Pusher gets subscription_error LimitReached', async () => {
    const client = await mesh.login('subs-1');
    expect(await client.request({ op: 'subscribe', channels: ['a', 'b'] })).toMatchObject({ success: true });
    expect(await client.request({ op: 'subscribe', channels: ['c', 'd'] })).toMatchObject({ success: false, reason: 'ERR_LIMIT', code: 43 });
    expect(await client.request({ op: 'subscribe', channels: ['c'] })).toMatchObject({ success: true });
    const pusher = await mesh.connect('', `/app/${APP.key}`);
    await pusher.next(pusherEvent('pusher:connection_established'));
    for (const channel of ['p1', 'p2', 'p3']) {
      pusher.send({ event: 'pusher:subscribe', data: { channel } });
      await pusher.next((f) => pusherEvent('pusher_internal:subscription_succeeded')(f) && (f as { channel: string }).channel === channel);
    }
    pusher.send({ event: 'pusher:subscribe', data: { channel: 'p4' } });
    expect(await pusher.next(pusherEvent('pusher:subscription_error'))).toMatchObject({ channel: 'p4', data: { type: 'LimitReached', status: 429 } });
    expect((await refusals()).subscriptions).toBe(2);
  });

  test('MESH_MAX_CONNECTIONS_PER_USER: the connection past it is told ERR_LIMIT and closed with 4030; the others stay', async () => {
    const first = await mesh.login('many');
    await mesh.login('many');
    const third = await mesh.connect();
    expect(await third.request({ op: 'auth', token: await token('many') })).toMatchObject({ success: false, reason: 'ERR_LIMIT' });
    expect((await third.closed).code).toBe(4030);
    expect(await first.request({ op: 'ping' })).toEqual({ op: 'pong' });
    expect((await refusals()).per_user).toBe(1);
  });

  test("MESH_MAX_CONNECTIONS_PER_USER counts users: operators' consoles (uid $console, one for all of them) are not held to it", async () => {
    const signIn = await fetch(`${mesh.url}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(signIn.status).toBe(200);
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const { token: consoleToken } = (await (await fetch(`${mesh.url}/console/session`, { headers: { cookie } })).json()) as { token: string };
    const consoles = await Promise.all([1, 2, 3].map(() => mesh.connect()));
    for (const socket of consoles) expect(await socket.request({ op: 'auth', token: consoleToken })).toMatchObject({ success: true, uid: '$console' });
    for (const socket of consoles) expect(await socket.request({ op: 'ping' })).toEqual({ op: 'pong' });
  });

  test('a Pusher socket that neither subscribes nor signs in within MESH_AUTH_TIMEOUT is closed with 4100 (pusher-js backs off and comes again)', async () => {
    const idle = await mesh.connect('', `/app/${APP.key}`);
    const busy = await mesh.connect('', `/app/${APP.key}`);
    busy.send({ event: 'pusher:subscribe', data: { channel: 'kept' } });
    await busy.next(pusherEvent('pusher_internal:subscription_succeeded'));
    expect((await idle.closed).code).toBe(4100);
    busy.send({ event: 'pusher:ping', data: {} });
    await busy.next(pusherEvent('pusher:pong'));
    expect((await refusals()).pusher_idle).toBeGreaterThanOrEqual(1);
  });

  test('ack writes a cursor only for a channel the connection is subscribed to (or the user\'s own)', async () => {
    const client = await mesh.login('acker');
    expect(await client.request({ op: 'ack', id: 5, channel: 'made-up-1' })).toMatchObject({ success: false, reason: 'ERR_BAD_ARGS' });
    await client.request({ op: 'subscribe', channel: 'real' });
    expect(await client.request({ op: 'ack', id: 5, channel: 'real' })).toMatchObject({ success: true });
    expect(await client.request({ op: 'ack', id: 6 })).toMatchObject({ success: true });
    await mesh.store.flushCursors();
    expect(await mesh.store.cursor('acker', 'made-up-1')).toBeNull();
    expect(await mesh.store.cursor('acker', 'real')).toBe(5);
    expect(await mesh.store.cursor('acker', 'user:acker')).toBe(6);
  });

  test('MESH_MAX_FRAMES_PER_SECOND: a socket sending faster is closed with 4029 (a Pusher one with 4100); a refused frame costs five; a client at its pace is untouched', async () => {
    const fast = await startTestMesh({ MESH_MAX_FRAMES_PER_SECOND: '20', PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` });
    const calm = await fast.login('calm');
    const flooder = await fast.login('flooder');
    for (let i = 0; i < 300; i++) flooder.send({ op: 'ping', rid: i });
    expect(await flooder.closed).toEqual({ code: 4029, reason: 'too many frames a second' });
    // The burst is twice the rate: 40 frames, the auth one among them (plus what refills while they are read).
    const pongs = flooder.frames.filter((f) => typeof f === 'object' && f.op === 'pong').length;
    expect(pongs).toBeGreaterThanOrEqual(39);
    expect(pongs).toBeLessThan(100);
    // Refused frames cost five each: eight bad ones spend the burst.
    const garbage = await fast.login('garbage');
    for (let i = 0; i < 300; i++) garbage.send('not json');
    expect((await garbage.closed).code).toBe(4029);
    const refused = garbage.frames.filter((f) => typeof f === 'object' && f.reason === 'ERR_BAD_JSON').length;
    expect(refused).toBeGreaterThanOrEqual(8);
    expect(refused).toBeLessThan(20);
    const pusher = await fast.connect('', `/app/${APP.key}`);
    await pusher.next(pusherEvent('pusher:connection_established'));
    for (let i = 0; i < 300; i++) pusher.send({ event: 'pusher:ping', data: {} });
    expect((await pusher.closed).code).toBe(4100);
    expect(await calm.request({ op: 'ping' })).toEqual({ op: 'pong' });
    expect((await refusals(fast)).frames).toBe(3);
  });

  test('MESH_MAX_CONNECTIONS_PER_ADDRESS: past it, a WebSocket upgrade or an SSE stream from that address is refused with 429 ERR_LIMIT', async () => {
    const small = await startTestMesh({ MESH_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const a = await small.login('addr-1');
    await small.login('addr-2');
    const upgrade = await fetch(`${small.url}/v1/ws`, { headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } });
    expect(upgrade.status).toBe(429);
    expect(await upgrade.json()).toMatchObject({ code: 'ERR_LIMIT' });
    const sse = await fetch(`${small.url}/v1/sse?token=${await token('addr-3')}`);
    expect(sse.status).toBe(429);
    a.close();
    await small.sessionClosed((a.frames[0] as { connection: string }).connection);
    const again = await connect(`${small.wsUrl}/v1/ws`);
    expect(await again.request({ op: 'ping' })).toEqual({ op: 'pong' });
    again.close();
    expect((await refusals(small)).per_address).toBe(2);
  });
});
