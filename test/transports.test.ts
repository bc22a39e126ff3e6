/**
 * One scenario suite over both transports — a WebSocket, and an EventSource
 * with the POST uplink: auth, subscribe, publish, resume, expiry, errors and
 * connmix's channel names behave the same whichever one a client uses.
 */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { OpenRefused, openClient, type TransportName } from './harness/transports.ts';
import { token } from './harness/tokens.ts';

const mesh = await startTestMesh();
// Expiries more than a second off get their timer from the sweep (every 333 ms) instead of at auth.
const sweeping = await startTestMesh({}, { expiryHorizonMs: 1000 });
const transports: TransportName[] = ['websocket', 'sse'];
/** A uid unique to this run and transport. */
const user = (t: TransportName, name: string) => `${name}-${t}`;

async function publish(body: unknown): Promise<number[]> {
  const res = await mesh.publish(body);
  expect(res.status).toBe(200);
  return ((await res.json()) as { ids: number[] }).ids;
}

describe.each(transports)('over %s', (transport) => {
  test('auth: a good token gives the uid and a cluster-unique connection id; a bad one is refused with its code', async () => {
    const a = await openClient(transport, mesh, user(transport, 'auth-1'));
    const b = await openClient(transport, mesh, user(transport, 'auth-1'));
    expect(a.auth.uid).toBe(user(transport, 'auth-1'));
    expect(a.auth.connection).toBeString();
    expect(a.auth.connection).not.toBe(b.auth.connection);
    const refused = await openClient(transport, mesh, 'x', { jwt: await token('x', {}, 'a-different-secret-of-32-bytes!!') }).catch((e) => e);
    expect(refused).toBeInstanceOf(OpenRefused);
    expect((refused as OpenRefused).code).toBe('ERR_TOKEN_INVALID');
    a.close();
    b.close();
  });

  test('subscribe, then API publishes arrive verbatim and client publishes as connmix event frames', async () => {
    const uid = user(transport, 'sub-1');
    const c = await openClient(transport, mesh, uid);
    expect(await c.request({ op: 'subscribe', args: ['room_t', '@user'] })).toMatchObject({ success: true, channels: ['room_t', `user:${uid}`] });
    await publish({ c: `user:${uid}`, d: '{"event":"@user","data":{"msg":"Hello,World!"}}' });
    expect(await c.request({ op: 'sendtoroom', args: ['room_t', 'hi room'], rid: 5 })).toMatchObject({ op: 'sendtoroom', success: true, rid: 5 });
    const [first, second] = await c.messagesUntil(2);
    expect(first).toBe('{"event":"@user","data":{"msg":"Hello,World!"}}');
    expect(JSON.parse(second!)).toMatchObject({ event: 'subscribe', channel: 'room_t', data: 'hi room', uid });
    expect(await c.request({ op: 'unsubscribe', args: ['room_t'] })).toMatchObject({ success: true });
    await c.request({ op: 'sendtoroom', args: ['room_t', 'after leaving'] });
    await publish({ c: `user:${uid}`, d: 'marker' });
    expect((await c.messagesUntil(3)).slice(2)).toEqual(['marker']);
    c.close();
  });

  test("connmix's user_<uid>: its owner subscribes and hears sendtouser in every spelling, framed with the name it used; others are refused", async () => {
    const me = user(transport, '10001');
    const other = user(transport, '10002');
    const owner = await openClient(transport, mesh, me);
    expect(await owner.request({ op: 'subscribe', args: [`user_${me}`] })).toMatchObject({ success: true, channels: [`user_${me}`] });
    const intruder = await openClient(transport, mesh, other);
    expect(await intruder.request({ op: 'subscribe', args: [`user_${me}`] })).toMatchObject({ success: false, code: 20, reason: 'ERR_FORBIDDEN' });
    for (const target of [`user_${me}`, `user:${me}`, me]) {
      expect(await intruder.request({ op: 'sendtouser', args: [target, `via ${target}`] })).toMatchObject({ success: true, channel: `user:${me}` });
    }
    const got = (await owner.messagesUntil(3)).map((t) => JSON.parse(t));
    expect(got.map((f) => [f.channel, f.data, f.uid])).toEqual([
      [`user_${me}`, `via user_${me}`, other],
      [`user_${me}`, `via user:${me}`, other],
      [`user_${me}`, `via ${me}`, other],
    ]);
    owner.close();
    intruder.close();
  });

  test('resume: since replays exactly what came after it, then live, with no duplicate', async () => {
    const ids = await publish(['r1', 'r2', 'r3'].map((d) => ({ c: `room_resume_${transport}`, d })));
    const c = await openClient(transport, mesh, user(transport, 'resume-1'));
    expect(await c.request({ op: 'subscribe', channel: `room_resume_${transport}`, since: ids[0] })).toMatchObject({ success: true });
    await publish({ c: `room_resume_${transport}`, d: 'r4' });
    expect(await c.messagesUntil(3)).toEqual(['r2', 'r3', 'r4']);
    c.close();
  });

  test('a since beyond the head of the store is clamped and said so, and live messages still arrive', async () => {
    const [head] = await publish({ c: 'probe', d: 'head' });
    const c = await openClient(transport, mesh, user(transport, 'clamp-1'));
    const reply = await c.request({ op: 'subscribe', channel: `room_clamp_${transport}`, since: head! + 1_000_000 });
    expect(reply).toMatchObject({ success: true, clamped: { since: head! + 1_000_000, to: head } });
    await publish({ c: `room_clamp_${transport}`, d: 'live after a clamp' });
    expect(await c.messagesUntil(1)).toEqual(['live after a clamp']);
    c.close();
  });

  test('expiry: the connection is closed with 4001 when the token expires', async () => {
    const exp = Math.ceil(Date.now() / 1000) + 2;
    const c = await openClient(transport, mesh, user(transport, 'exp-1'), { claims: { exp } });
    expect(await c.closed).toEqual({ code: 4001, reason: 'token expired' });
  });

  test('expiry beyond the timer horizon: the sweep arms it, and the close comes at the expiry, not before', async () => {
    const exp = Math.ceil(Date.now() / 1000) + 3;
    const c = await openClient(transport, sweeping, user(transport, 'exp-2'), { claims: { exp } });
    expect(await c.closed).toEqual({ code: 4001, reason: 'token expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    expect(Date.now()).toBeLessThan(exp * 1000 + 1000);
  });

  test('errors: each bad op gets its reply with a stable code, and the connection stays usable', async () => {
    const c = await openClient(transport, mesh, user(transport, 'err-1'));
    expect(await c.request({ op: 'launch' })).toMatchObject({ op: 'launch', success: false, code: 11, reason: 'ERR_UNKNOWN_OP' });
    expect(await c.request({ op: 'subscribe' })).toMatchObject({ success: false, code: 12, reason: 'ERR_BAD_ARGS' });
    expect(await c.request({ op: 'subscribe', channel: 'has space' })).toMatchObject({ success: false, code: 21, reason: 'ERR_BAD_CHANNEL' });
    expect(await c.request({ op: 'subscribe', channel: 'user:someone-else' })).toMatchObject({ success: false, code: 20, reason: 'ERR_FORBIDDEN' });
    expect(await c.request({ op: 'ping', rid: 'p' })).toEqual({ op: 'pong', rid: 'p' });
    c.close();
  });
});
