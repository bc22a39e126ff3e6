/**
 * Webhooks on a two-instance cluster (Bun and Node on one Postgres): every event
 * kind, cluster-wide ones once; signed; written before they are sent, retried
 * through failures, kept across a restart; an instance SIGKILLed is reported by
 * the other within the TTL; a hanging backend holds up no client.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { SignJWT } from 'jose';
import { checkSignature, sign } from '../src/hooks/signature.ts';
import { startCluster } from './harness/cluster.ts';
import { freshDatabase } from './harness/postgres.ts';
import { startProcess } from './harness/process.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';
import { startWebhookReceiver, type ReceivedEvent } from './harness/webhook-receiver.ts';
import { connect, onChannel } from './harness/ws-client.ts';

const SECRET = 'webhook-test-secret-0123456789';
const TTL_MS = 3000;
const receiver = await startWebhookReceiver(SECRET);
afterAll(() => receiver.close());
const MERCURE_KEY = 'webhook-test-mercure-key-0123';
const env = { MESH_WEBHOOK_URL: receiver.url, MESH_WEBHOOK_SECRET: SECRET, MESH_WEBHOOK_TIMEOUT: '1s', MESH_INSTANCE_TTL: `${TTL_MS}ms`, MESH_API_KEY: 'webhook-test-api-key-0123', MERCURE_PUBLISHER_JWT_KEY: MERCURE_KEY };
const { databaseUrl, instances } = await startCluster(['bun', 'node'], { env });
const [A, B] = instances as [(typeof instances)[0], (typeof instances)[0]];

/** The delivered events about `who` (a uid, connection id or channel). */
const about = (who: string) => receiver.delivered().filter((e) => e.uid === who || e.connection === who || e.channel === who);
const kinds = (events: ReceivedEvent[]) => events.map((e) => (e.reason ? `${e.type}:${e.reason}` : e.type));
const waitFor = (who: string, count: number) => receiver.until(() => about(who).length >= count);

describe('webhooks', () => {
  test('connect, subscribe, unsubscribe, disconnect with its reason; user_online/offline and channel_occupied/vacated once for the cluster', async () => {
    const x = await A.login('hook-u1');
    const xId = (x.frames.find((f) => (f as { op?: string }).op === 'auth') as { connection: string }).connection;
    await waitFor('hook-u1', 2);
    expect(await x.request({ op: 'subscribe', channels: ['room_hook'] })).toMatchObject({ success: true });
    await waitFor('room_hook', 2);
    const y = await B.login('hook-u1');
    const yId = (y.frames.find((f) => (f as { op?: string }).op === 'auth') as { connection: string }).connection;
    expect(await y.request({ op: 'subscribe', channels: ['room_hook'] })).toMatchObject({ success: true });
    await waitFor(yId, 2);
    expect(await x.request({ op: 'unsubscribe', channels: ['room_hook'] })).toMatchObject({ success: true });
    await waitFor(xId, 3);
    x.close();
    await waitFor(xId, 4);
    // The last connection of the user, and the last subscriber of the channel: kicked by the backend.
    const kick = await fetch(`${B.url}/v1/mesh/connections/${encodeURIComponent(yId)}`, { method: 'DELETE', headers: { authorization: `Bearer ${env.MESH_API_KEY}` } });
    expect(kick.status).toBe(200);
    await receiver.until(() => about('hook-u1').some((e) => e.type === 'user_offline'));

    expect(kinds(about(xId))).toEqual(['connect', 'subscribe', 'unsubscribe', 'disconnect:client_closed']);
    expect(kinds(about(yId))).toEqual(['connect', 'subscribe', 'disconnect:kicked']);
    expect(about(xId)[0]).toMatchObject({ uid: 'hook-u1', transport: 'websocket', instance: 'A' });
    expect(about(yId)[0]).toMatchObject({ uid: 'hook-u1', transport: 'websocket', instance: 'B' });
    // Once each across both instances, in the order they became true.
    expect(kinds(about('hook-u1').filter((e) => e.type.startsWith('user_')))).toEqual(['user_online', 'user_offline']);
    expect(kinds(about('room_hook').filter((e) => e.type.startsWith('channel_')))).toEqual(['channel_occupied', 'channel_vacated']);
    for (const event of about('hook-u1')) {
      expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Math.abs(event.at - Date.now())).toBeLessThan(60_000);
    }
    expect(receiver.posts.every((p) => p.signed)).toBe(true);
  }, 60_000);

  test('a token that expires ends the connection with reason token_expired', async () => {
    const ws = await connect(`${A.url.replace('http', 'ws')}/v1/ws`);
    const reply = (await ws.request({ op: 'auth', token: await token('hook-expiring', { exp: Math.floor(Date.now() / 1000) + 2 }) })) as { connection: string };
    await receiver.until(() => about(reply.connection).some((e) => e.type === 'disconnect'), 15_000);
    expect(kinds(about(reply.connection))).toEqual(['connect', 'disconnect:token_expired']);
  }, 30_000);

  test('a backend answering 500 gets every event again until it takes them; nothing is lost, ids repeat only as retries', async () => {
    const postsBefore = receiver.posts.length;
    receiver.failNext(2);
    const c = await B.login('hook-retry');
    await receiver.until(() => about('hook-retry').length >= 2, 20_000);
    const tries = receiver.posts.slice(postsBefore);
    expect(tries.slice(0, 2).map((p) => p.status)).toEqual([500, 500]);
    expect(tries.at(-1)!.status).toBe(200);
    expect(kinds(about('hook-retry'))).toEqual(['connect', 'user_online']);
    // The failed posts carried the same events (the same ids) as the one that got through.
    const ids = new Set(about('hook-retry').map((e) => e.id));
    expect(tries[0]!.events.filter((e) => e.uid === 'hook-retry').every((e) => ids.has(e.id))).toBe(true);
    c.close();
    await receiver.until(() => about('hook-retry').some((e) => e.type === 'user_offline'));
  }, 30_000);

  test('a backend that hangs holds up no client: connects, subscribes and messages go on while its POST waits', async () => {
    receiver.hang();
    const publish = (d: string) =>
      fetch(`${B.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${env.MESH_API_KEY}` }, body: JSON.stringify({ c: 'room_hang', d }) });
    try {
      const listener = await A.login('hook-hang-1', 'format=envelope');
      await receiver.until(() => receiver.held() > 0);
      expect(await listener.request({ op: 'subscribe', channels: ['room_hang'] })).toMatchObject({ success: true });
      await B.login('hook-hang-2');
      const failures = async () => {
        let n = 0;
        for (const i of [A, B]) n += ((await (await fetch(`${i.url}/v1/mesh/stats`, { headers: { authorization: `Bearer ${env.MESH_API_KEY}` } })).json()) as { webhooks: { failures: number } }).webhooks.failures;
        return n;
      };
      const failedBefore = await failures();
      // Messages flow, message after message, until a webhook POST has timed out (MESH_WEBHOOK_TIMEOUT, 1 s) and been put back.
      let sent = 0;
      const deadline = Date.now() + 15_000;
      while ((await failures()) === failedBefore && Date.now() < deadline) {
        expect((await publish(`m${sent}`)).status).toBe(200);
        expect(await listener.next(onChannel('room_hang'))).toMatchObject({ data: `m${sent}` });
        sent++;
      }
      expect(await failures()).toBeGreaterThan(failedBefore);
      expect(sent).toBeGreaterThan(10);
      // All of that happened while POSTs were unanswered.
      expect(receiver.held()).toBeGreaterThan(0);
    } finally {
      receiver.release();
    }
    await receiver.until(() => about('hook-hang-1').length >= 3 && about('hook-hang-2').length >= 2, 30_000);
  }, 60_000);

  test('an instance SIGKILLed: the other reports its connections gone (instance_lost), the user offline and the channel vacated, within the TTL', async () => {
    const extra = await startProcess('node', { ...env, DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: 'K', MESH_HEARTBEAT: '2s' });
    const ws = await connect(`${extra.url.replace('http', 'ws')}/v1/ws`);
    const reply = (await ws.request({ op: 'auth', token: await token('hook-killed') })) as { connection: string };
    expect(await ws.request({ op: 'subscribe', channels: ['room_killed'] })).toMatchObject({ success: true });
    await receiver.until(() => about('room_killed').some((e) => e.type === 'channel_occupied'));
    const killedAt = Date.now();
    await extra.stop('SIGKILL');
    await receiver.until(() => about('hook-killed').some((e) => e.type === 'user_offline'), 3 * TTL_MS);
    expect(Date.now() - killedAt).toBeLessThan(TTL_MS + 1000);
    expect(kinds(about(reply.connection))).toEqual(['connect', 'subscribe', 'disconnect:instance_lost']);
    expect(about(reply.connection).at(-1)).toMatchObject({ instance: 'K' });
    expect(kinds(about('room_killed').filter((e) => e.type.startsWith('channel_')))).toEqual(['channel_occupied', 'channel_vacated']);
  }, 60_000);

  test('events survive a restart: written while the backend was down, sent by the instance after it comes back', async () => {
    // An instance alone on a database of its own, so no other instance sends its events meanwhile.
    const own = await freshDatabase();
    const down = await startWebhookReceiver(SECRET);
    await down.close();
    const first = await startProcess('bun', { ...env, MESH_WEBHOOK_URL: down.url, DATABASE_URL: own, MESH_INSTANCE_ID: 'R' });
    const ws = await connect(`${first.url.replace('http', 'ws')}/v1/ws`);
    const reply = (await ws.request({ op: 'auth', token: await token('hook-durable') })) as { connection: string };
    ws.close();
    await pollUntil(async () => {
      const stats = (await (await fetch(`${first.url}/v1/mesh/stats`, { headers: { authorization: `Bearer ${env.MESH_API_KEY}` } })).json()) as { webhooks: { failures: number } };
      return stats.webhooks.failures > 0;
    }, 15_000, 'a failed webhook POST');
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(about(reply.connection)).toEqual([]);
    const again = await startProcess('bun', { ...env, DATABASE_URL: own, MESH_INSTANCE_ID: 'R' });
    await receiver.until(() => about(reply.connection).length >= 2, 30_000);
    expect(kinds(about(reply.connection))).toEqual(['connect', 'disconnect:client_closed']);
    expect(kinds(about('hook-durable').filter((e) => e.type.startsWith('user_')))).toEqual(['user_online', 'user_offline']);
    await again.stop();
  }, 90_000);

  // The bound is checked in the statement that writes (mesh_webhook_backlog), never from a count taken earlier.
  test('MESH_WEBHOOK_BACKLOG: a full backlog takes no more (dropped, counted) and is never exceeded; right after it drains, new events are written and sent', async () => {
    const own = await freshDatabase();
    const slow = await startWebhookReceiver(SECRET);
    slow.hang();
    const q = await startProcess('node', { ...env, MESH_WEBHOOK_URL: slow.url, MESH_WEBHOOK_TIMEOUT: '60s', DATABASE_URL: own, MESH_INSTANCE_ID: 'Q', MESH_WEBHOOK_BACKLOG: '4' });
    const headers = { authorization: `Bearer ${env.MESH_API_KEY}` };
    const stats = async () => ((await (await fetch(`${q.url}/v1/mesh/stats`, { headers })).json()) as { webhooks: { pending: number; dropped: number } }).webhooks;
    const table = postgres(own, { max: 1 });
    const waiting = async () => Number((await table`select count(*)::int8 as n from mesh_webhook`)[0]!.n);
    const clients: { close(): void }[] = [];
    const login = async (uid: string) => {
      const ws = await connect(`${q.url.replace('http', 'ws')}/v1/ws`);
      expect(await ws.request({ op: 'auth', token: await token(uid) })).toMatchObject({ success: true });
      clients.push(ws);
    };
    try {
      // Each login is written before its reply: connect and user_online, two events a write.
      await login('q1');
      await slow.until(() => slow.held() === 1);
      await login('q2');
      expect(await waiting()).toBe(4);
      // Full: the next writes take none of their events.
      await login('q3');
      await login('q4');
      expect(await waiting()).toBe(4);
      await pollUntil(async () => (await stats()).dropped === 4, 15_000, 'four events counted dropped');
      const metrics = await (await fetch(`${q.url}/metrics`, { headers })).text();
      expect(metrics).toMatch(/^pgmesh_webhooks_dropped_total\{[^}]*\} 4$/m);
      // The backend answers again: the backlog drains, and the very next events are written.
      slow.release();
      await slow.until(() => slow.delivered().length === 4);
      await pollUntil(async () => (await waiting()) === 0, 15_000, 'the backlog drained');
      await login('q5');
      await slow.until(() => slow.delivered().some((e) => e.uid === 'q5' && e.type === 'user_online'));
      expect(slow.delivered().map((e) => `${e.type}:${e.uid}`)).toEqual(['connect:q1', 'user_online:q1', 'connect:q2', 'user_online:q2', 'connect:q5', 'user_online:q5']);
      expect((await stats()).dropped).toBe(4);
    } finally {
      for (const ws of clients) ws.close();
      await table.end();
      await q.stop();
      await slow.close();
    }
  }, 60_000);

  test("a Mercure subscriber that hears a pgmesh channel is no pgmesh user: no subscribe, connect or user_online for it; the channel's occupancy counts it", async () => {
    const reader = await new SignJWT({ mercure: { subscribe: ['room_meet'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(MERCURE_KEY));
    const controller = new AbortController();
    const stream = await fetch(`${A.url}/.well-known/mercure?topic=room_meet`, { headers: { authorization: `Bearer ${reader}` }, signal: controller.signal });
    expect(stream.status).toBe(200);
    await waitFor('room_meet', 1);
    const member = await B.login('meet-u1');
    expect(await member.request({ op: 'subscribe', channels: ['room_meet'] })).toMatchObject({ success: true });
    await waitFor('room_meet', 2);
    controller.abort();
    member.close();
    await waitFor('room_meet', 3);
    // Occupied by the Mercure subscriber first; the pgmesh user's subscribe; vacated when both are gone.
    expect(kinds(about('room_meet'))).toEqual(['channel_occupied', 'subscribe', 'channel_vacated']);
    expect(receiver.delivered().some((e) => String(e.uid ?? '').startsWith('$'))).toBe(false);
  }, 30_000);

  test('the signature: good, tampered body, stale timestamp, wrong secret, none', () => {
    const body = '{"events":[]}';
    expect(checkSignature(SECRET, body, sign(SECRET, body))).toBeNull();
    expect(checkSignature(SECRET, body.replace('[]', '[1]'), sign(SECRET, body))).toBe('mismatch');
    expect(checkSignature(SECRET, body, sign(SECRET, body, Date.now() - 10 * 60_000))).toBe('stale');
    expect(checkSignature(SECRET, body, sign('another-secret-0123456789', body))).toBe('mismatch');
    expect(checkSignature(SECRET, body, undefined)).toBe('missing');
    expect(checkSignature(SECRET, body, 't=1,v1=zz')).toBe('malformed');
  });
});
