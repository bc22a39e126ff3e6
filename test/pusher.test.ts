/**
 * The Pusher protocol with the real clients and nothing of ours on their side:
 * pusher-js (its Node build) subscribes, the official `pusher` server library
 * triggers and signs channel auth, across two instances (Bun and Node) on one
 * Postgres. Wrong keys, bad signatures, stale timestamps, oversize events and
 * client events on public channels get Pusher's errors.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createHash, createHmac } from 'node:crypto';
import PusherServer from 'pusher';
import { startCluster, type Instance } from './harness/cluster.ts';
import { pusherClient, pusherServer, type Member, type PusherAppKeys, type SignIn } from './harness/pusher.ts';
import { startProcess } from './harness/process.ts';
import { startTcpProxy } from './harness/tcp-proxy.ts';
import { connect } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';

const APP = { id: '1001', key: 'app-key-1', secret: 'app-secret-1-0123456789' };
const OTHER = { id: '1002', key: 'app-key-2', secret: 'app-secret-2-0123456789' };
const pusherApps = `${APP.id}:${APP.key}:${APP.secret},${OTHER.id}:${OTHER.key}:${OTHER.secret}`;
const { databaseUrl, instances } = await startCluster(['bun', 'node'], { env: { PUSHER_APPS: pusherApps, MESH_INSTANCE_TTL: '3s' } });
const [A, B] = instances as [Instance, Instance];

const serverFor = (instance: Instance, app: PusherAppKeys = APP) => pusherServer(instance.port, app);
const sdkA = serverFor(A);
const sdkB = serverFor(B);
const client = (instance: Instance, app: PusherAppKeys = APP, member?: Member, signin?: SignIn) => pusherClient(instance.port, app, { member, signin });

const open: { close(): void }[] = [];
afterAll(() => {
  for (const c of open) c.close();
});
async function opened(instance: Instance, app: PusherAppKeys = APP, member?: Member, signin?: SignIn) {
  const c = await client(instance, app, member, signin);
  open.push(c);
  return c;
}

describe('Pusher protocol', () => {
  test('a public channel: pusher-js on one instance gets what the server library triggers on the other', async () => {
    const c = await opened(A);
    expect(c.socketId()).toMatch(/^\d+\.\d+$/);
    expect(await c.subscribe('news')).toEqual({ ok: true });
    await sdkB.trigger('news', 'headline', { title: 'pgmesh speaks Pusher' });
    await c.until(() => c.events('news').length >= 1);
    expect(c.events('news')).toEqual([{ channel: 'news', event: 'headline', data: { title: 'pgmesh speaks Pusher' } }]);
  });

  test('a private channel needs the auth the app signs; a forged one gets an AuthError', async () => {
    const c = await opened(B);
    expect(await c.subscribe('private-orders')).toEqual({ ok: true });
    const forged = await c.subscribe('private-forged');
    expect(forged.ok).toBe(false);
    expect(forged.error).toMatchObject({ type: 'AuthError', status: 401 });
    await sdkA.trigger(['private-orders', 'private-forged'], 'placed', { id: 7 });
    await c.until(() => c.events('private-orders').length >= 1);
    expect(c.events('private-orders')).toEqual([{ channel: 'private-orders', event: 'placed', data: { id: 7 } }]);
    expect(c.events('private-forged')).toEqual([]);
  });

  test('client events reach the other subscribers, not the sender, across instances', async () => {
    const alice = await opened(A);
    const bob = await opened(B);
    expect(await alice.subscribe('private-chat')).toEqual({ ok: true });
    expect(await bob.subscribe('private-chat')).toEqual({ ok: true });
    const channel = alice.pusher.channel('private-chat')!;
    expect(channel.trigger('client-typing', { who: 'alice' })).toBe(true);
    await bob.until(() => bob.events('private-chat').length >= 1);
    expect(bob.events('private-chat')).toEqual([{ channel: 'private-chat', event: 'client-typing', data: { who: 'alice' } }]);
    // A server event after it: once alice has that, she would have had her own client event too.
    await sdkA.trigger('private-chat', 'after', 1);
    await alice.until(() => alice.events('private-chat').length >= 1);
    expect(alice.events('private-chat').map((e) => e.event)).toEqual(['after']);
  });

  test('private-encrypted- channels pass through: the server library encrypts, pusher-js decrypts, pgmesh carries only ciphertext', async () => {
    const masterKey = Buffer.alloc(32, 7).toString('base64');
    const c = await pusherClient(A.port, APP, { masterKey });
    open.push(c);
    expect(await c.subscribe('private-encrypted-vault')).toEqual({ ok: true });
    // A socket of ours on the same channel sees what pgmesh carries.
    const ws = await connect(`${B.url.replace('http', 'ws')}/app/${APP.key}?protocol=7`);
    const established = (await ws.next((f) => (f as { event?: string }).event === 'pusher:connection_established')) as { data: string };
    const socketId = (JSON.parse(established.data) as { socket_id: string }).socket_id;
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-encrypted-vault', auth: pusherServer(B.port, APP, masterKey).authorizeChannel(socketId, 'private-encrypted-vault').auth } }));
    await ws.next((f) => (f as { event?: string }).event === 'pusher_internal:subscription_succeeded');
    await pusherServer(B.port, APP, masterKey).trigger('private-encrypted-vault', 'pin', { pin: 1234 });
    await c.until(() => c.events('private-encrypted-vault').length >= 1);
    expect(c.events('private-encrypted-vault')).toEqual([{ channel: 'private-encrypted-vault', event: 'pin', data: { pin: 1234 } }]);
    const carried = (await ws.next((f) => (f as { event?: string }).event === 'pin')) as { data: string };
    expect(carried.data).not.toContain('1234');
    expect(Object.keys(JSON.parse(carried.data) as object).sort()).toEqual(['ciphertext', 'nonce']);
    ws.close();
  });

  test("socket_id leaves the sender out (Laravel's toOthers()); batch_events sends several", async () => {
    const sender = await opened(A);
    const other = await opened(B);
    expect(await sender.subscribe('room-1')).toEqual({ ok: true });
    expect(await other.subscribe('room-1')).toEqual({ ok: true });
    await sdkB.trigger('room-1', 'said', { text: 'hi' }, { socket_id: sender.socketId() });
    await sdkB.triggerBatch([
      { channel: 'room-1', name: 'batch', data: { n: 1 } },
      { channel: 'room-1', name: 'batch', data: { n: 2 } },
    ]);
    await other.until(() => other.events('room-1').length >= 3);
    await sender.until(() => sender.events('room-1').length >= 2);
    expect(other.events('room-1').map((e) => [e.event, e.data])).toEqual([['said', { text: 'hi' }], ['batch', { n: 1 }], ['batch', { n: 2 }]]);
    expect(sender.events('room-1').map((e) => [e.event, e.data])).toEqual([['batch', { n: 1 }], ['batch', { n: 2 }]]);
  });

  test("each app's channels are its own", async () => {
    const one = await opened(A);
    const two = await opened(A, OTHER);
    expect(await one.subscribe('shared-name')).toEqual({ ok: true });
    expect(await two.subscribe('shared-name')).toEqual({ ok: true });
    await serverFor(B, OTHER).trigger('shared-name', 'for-two', 2);
    await sdkB.trigger('shared-name', 'for-one', 1);
    await one.until(() => one.events('shared-name').length >= 1);
    await two.until(() => two.events('shared-name').length >= 1);
    expect(one.events('shared-name').map((e) => e.event)).toEqual(['for-one']);
    expect(two.events('shared-name').map((e) => e.event)).toEqual(['for-two']);
  });

  test('presence: member lists and member_added/removed across instances, user_info included, client events carry user_id; a killed instance\'s members leave', async () => {
    type Members = { count: number; me: { id: string } | null; get(id: string): { info: unknown } | null; each(f: (m: { id: string; info: unknown }) => void): void };
    const members = (c: Awaited<ReturnType<typeof opened>>) => (c.pusher.channel('presence-room') as unknown as { members: Members }).members;
    const ids = (c: Awaited<ReturnType<typeof opened>>) => {
      const out: string[] = [];
      members(c).each((m) => out.push(m.id));
      return out.sort();
    };
    const alice = await opened(A, APP, { user_id: 'u-alice', user_info: { name: 'Alice' } });
    expect(await alice.subscribe('presence-room')).toEqual({ ok: true });
    expect(members(alice).me?.id).toBe('u-alice');
    const bob = await opened(B, APP, { user_id: 'u-bob', user_info: { name: 'Bob' } });
    expect(await bob.subscribe('presence-room')).toEqual({ ok: true });
    await bob.until(() => ids(bob).length === 2);
    await alice.until(() => ids(alice).length === 2);
    expect(ids(alice)).toEqual(['u-alice', 'u-bob']);
    expect(members(alice).get('u-bob')?.info).toEqual({ name: 'Bob' });
    expect(members(bob).get('u-alice')?.info).toEqual({ name: 'Alice' });
    expect(alice.events('presence-room')).toEqual([]);

    // A client event on a presence channel tells the others who sent it.
    const seen: { data: unknown; user_id?: string }[] = [];
    bob.pusher.channel('presence-room')!.bind('client-wave', (data: unknown, meta: { user_id?: string }) => seen.push({ data, user_id: meta?.user_id }));
    alice.pusher.channel('presence-room')!.trigger('client-wave', { hi: 1 });
    await bob.until(() => seen.length >= 1);
    expect(seen).toEqual([{ data: { hi: 1 }, user_id: 'u-alice' }]);

    // A member on an instance that is SIGKILLed leaves everyone's list within the TTL.
    const extra = await startProcess('node', { DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: 'PK', MESH_HEARTBEAT: '2s', MESH_INSTANCE_TTL: '3s', PUSHER_APPS: pusherApps });
    const carol = await client(extra as Instance, APP, { user_id: 'u-carol' });
    expect(await carol.subscribe('presence-room')).toEqual({ ok: true });
    await alice.until(() => ids(alice).includes('u-carol'));
    await extra.stop('SIGKILL');
    await alice.until(() => !ids(alice).includes('u-carol'));
    await bob.until(() => !ids(bob).includes('u-carol'));

    // Bob leaves the channel: alice sees him go; the member list is right for a newcomer.
    bob.pusher.unsubscribe('presence-room');
    await alice.until(() => ids(alice).length === 1);
    const dave = await opened(B, APP, { user_id: 'u-dave' });
    expect(await dave.subscribe('presence-room')).toEqual({ ok: true });
    await dave.until(() => ids(dave).length === 2);
    expect(ids(dave)).toEqual(['u-alice', 'u-dave']);
  }, 60_000);

  test("the server library's channel queries, and terminateUserConnections closing a user's sockets on every instance", async () => {
    const erin = await opened(A, APP, { user_id: 'q-erin', user_info: { name: 'Erin' } });
    const erinElsewhere = await opened(B, APP, { user_id: 'q-erin' });
    const finn = await opened(B, APP, { user_id: 'q-finn' });
    for (const c of [erin, erinElsewhere, finn]) expect(await c.subscribe('presence-query')).toEqual({ ok: true });
    expect(await finn.subscribe('news-query')).toEqual({ ok: true });
    const get = async (path: string, params: Record<string, string> = {}) => {
      const res = await sdkA.get({ path, params });
      expect(res.status).toBe(200);
      return res.json();
    };
    // Presence is written in batches: wait until the cluster has all three sockets.
    await pollUntil(async () => (await get('/channels/presence-query', { info: 'subscription_count' })).subscription_count === 3, 10_000, 'three presence subscriptions');
    expect(await get('/channels', { filter_by_prefix: 'presence-q', info: 'user_count' })).toEqual({ channels: { 'presence-query': { user_count: 2 } } });
    expect(await get('/channels/presence-query', { info: 'user_count,subscription_count' })).toEqual({ occupied: true, user_count: 2, subscription_count: 3 });
    expect(await get('/channels/news-query', { info: 'subscription_count' })).toEqual({ occupied: true, subscription_count: 1 });
    expect(await get('/channels/nobody-here')).toEqual({ occupied: false });
    expect(await get('/channels/presence-query/users')).toEqual({ users: [{ id: 'q-erin' }, { id: 'q-finn' }] });
    expect((await get('/channels', { filter_by_prefix: 'news-q' })).channels).toEqual({ 'news-query': {} });
    await expect(sdkA.get({ path: '/channels/news-query', params: { info: 'user_count' } })).rejects.toMatchObject({ status: 400 });

    // Erin's two sockets, on two instances, are closed (4009: pusher-js does not reconnect); Finn's is not.
    const closed = (c: typeof erin) => new Promise<void>((resolve) => c.pusher.connection.bind('state_change', (s: { current: string }) => s.current === 'disconnected' && resolve()));
    const gone = Promise.all([closed(erin), closed(erinElsewhere)]);
    await sdkB.terminateUserConnections('q-erin');
    await gone;
    expect(finn.pusher.connection.state).toBe('connected');
    await pollUntil(async () => (await get('/channels/presence-query/users')).users.length === 1, 10_000, 'erin gone from the member list');
    expect(await get('/channels/presence-query/users')).toEqual({ users: [{ id: 'q-finn' }] });

    // pgmesh's own server API lists pgmesh's users and channels, never an app's.
    const users = (await (await fetch(`${A.url}/v1/mesh/users`)).json()) as { users: string[] };
    const channels = (await (await fetch(`${A.url}/v1/mesh/channels`)).json()) as { channels: { channel: string }[] };
    expect(users.users.filter((u) => u.includes('pusher'))).toEqual([]);
    expect(channels.channels.filter((ch) => ch.channel.includes('query'))).toEqual([]);
    expect((await fetch(`${A.url}/v1/mesh/channels?prefix=${encodeURIComponent('$pusher')}`)).status).toBe(400);
  }, 60_000);

  test("sign-in: the server library's sendToUser() reaches the user's sockets on every instance, nobody else can take its channel, terminateUserConnections ends them", async () => {
    const signedIn = (c: Awaited<ReturnType<typeof opened>>) => c.until(() => (c.pusher.user as unknown as { serverToUserChannel: { subscribed: boolean } | null }).serverToUserChannel?.subscribed === true);
    const gina = await opened(A, APP, undefined, { id: 'u-gina', name: 'Gina' });
    const ginaElsewhere = await opened(B, APP, undefined, { id: 'u-gina' });
    const other = await opened(B, APP, undefined, { id: 'u-hal' });
    for (const c of [gina, ginaElsewhere, other]) {
      c.pusher.signin();
      await signedIn(c);
    }
    expect((gina.pusher.user as unknown as { user_data: unknown }).user_data).toEqual({ id: 'u-gina', name: 'Gina' });
    await sdkB.sendToUser('u-gina', 'invoice.paid', { amount: 12 });
    for (const c of [gina, ginaElsewhere]) await c.until(() => c.userEvents().length >= 1);
    await sdkA.sendToUser('u-hal', 'for-hal', 1);
    await other.until(() => other.userEvents().length >= 1);
    expect(gina.userEvents()).toEqual([{ channel: '', event: 'invoice.paid', data: { amount: 12 } }]);
    expect(ginaElsewhere.userEvents()).toEqual([{ channel: '', event: 'invoice.paid', data: { amount: 12 } }]);
    expect(other.userEvents().map((e) => e.event)).toEqual(['for-hal']);

    // Another socket may not listen on Gina's channel; a forged sign-in ends the connection (4009).
    const ws = await connect(`${A.url.replace('http', 'ws')}/app/${APP.key}?protocol=7`);
    await ws.next((f) => (f as { event?: string }).event === 'pusher:connection_established');
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: '#server-to-user-u-gina' } }));
    expect(await ws.next((f) => (f as { event?: string }).event === 'pusher:subscription_error')).toMatchObject({ data: { type: 'AuthError', status: 403 } });
    ws.send(JSON.stringify({ event: 'pusher:signin', data: { user_data: '{"id":"u-gina"}', auth: `${APP.key}:${'0'.repeat(64)}` } }));
    expect(await ws.next((f) => (f as { event?: string }).event === 'pusher:error')).toMatchObject({ data: { code: 4009 } });
    expect((await ws.closed).code).toBe(4009);

    // A socket is one user: a presence channel_data naming another is refused, not half-believed.
    const ivy = await opened(A, APP, { user_id: 'u-not-ivy' }, { id: 'u-ivy' });
    ivy.pusher.signin();
    await signedIn(ivy);
    const mismatch = await ivy.subscribe('presence-who');
    expect(mismatch.ok).toBe(false);
    expect(mismatch.error).toMatchObject({ type: 'AuthError', status: 403 });

    // A signed-in user is who terminate_connections names, wherever its sockets are.
    await sdkA.terminateUserConnections('u-gina');
    for (const c of [gina, ginaElsewhere]) await c.until(() => c.states.includes('disconnected'));
    expect(other.pusher.connection.state).toBe('connected');
  }, 30_000);

  test('an instance killed under a client: pusher-js reconnects through the balancer to another instance, subscribes again and gets what follows', async () => {
    const doomed = await startProcess('bun', { DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: 'PD', MESH_HEARTBEAT: '2s', MESH_INSTANCE_TTL: '3s', PUSHER_APPS: pusherApps });
    // The balancer in front: a TCP proxy that sends new connections to the doomed instance until it is taken out.
    const balancer = await startTcpProxy(doomed.port);
    try {
      const c = await pusherClient(balancer.port, APP);
      open.push(c);
      expect(await c.subscribe('news-failover')).toEqual({ ok: true });
      await sdkA.trigger('news-failover', 'before', 1);
      await c.until(() => c.events('news-failover').length >= 1);
      await doomed.stop('SIGKILL');
      balancer.retarget(B.port);
      await c.until(() => c.states.filter((s) => s === 'connected').length >= 2, 30_000);
      // Subscribed again (pusher-js does it on reconnect): the member of the cluster's presence on B.
      await pollUntil(async () => (await (await sdkA.get({ path: '/channels/news-failover', params: { info: 'subscription_count' } })).json()).subscription_count >= 1, 10_000, 'subscribed again on B');
      await sdkA.trigger('news-failover', 'after', 2);
      await c.until(() => c.events('news-failover').length >= 2);
      expect(c.events('news-failover').map((e) => [e.event, e.data])).toEqual([['before', 1], ['after', 2]]);
    } finally {
      await balancer.close();
    }
  }, 60_000);

  test('client events over 10 a second get pusher:error 4301; those within the limit go through', async () => {
    const listener = await opened(B);
    expect(await listener.subscribe('private-burst')).toEqual({ ok: true });
    const ws = await connect(`${A.url.replace('http', 'ws')}/app/${APP.key}?protocol=7`);
    const established = (await ws.next((f) => (f as { event?: string }).event === 'pusher:connection_established')) as { data: string };
    const socketId = (JSON.parse(established.data) as { socket_id: string }).socket_id;
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-burst', auth: sdkA.authorizeChannel(socketId, 'private-burst').auth } }));
    await ws.next((f) => (f as { event?: string }).event === 'pusher_internal:subscription_succeeded');
    for (let i = 0; i < 30; i++) ws.send(JSON.stringify({ event: 'client-burst', channel: 'private-burst', data: { i } }));
    const refusals = () => ws.frames.filter((f) => (f as { event?: string }).event === 'pusher:error' && (f as { data: { code: number } }).data.code === 4301).length;
    await ws.until(() => refusals() >= 15);
    await listener.until(() => listener.events('private-burst').length + refusals() >= 30);
    // Within the limit: the burst of 10, and the few the allowance refilled while they arrived.
    const got = listener.events('private-burst').length;
    expect(got + refusals()).toBe(30);
    expect(got).toBeLessThan(15);
    ws.close();
  });

  test('a client event over 10 KB gets pusher:error 4301 and reaches nobody', async () => {
    const listener = await opened(B);
    expect(await listener.subscribe('private-big')).toEqual({ ok: true });
    const sender = await opened(A);
    expect(await sender.subscribe('private-big')).toEqual({ ok: true });
    const errors: unknown[] = [];
    sender.pusher.connection.bind('error', (e: unknown) => errors.push(e));
    sender.pusher.channel('private-big')!.trigger('client-big', { blob: 'x'.repeat(11 * 1024) });
    await sender.until(() => errors.length >= 1);
    expect(errors[0]).toMatchObject({ type: 'PusherError', data: { code: 4301 } });
    sender.pusher.channel('private-big')!.trigger('client-small', { ok: true });
    await listener.until(() => listener.events('private-big').length >= 1);
    expect(listener.events('private-big').map((e) => e.event)).toEqual(['client-small']);
  });

  test('a wrong app key gets pusher:error 4001 and the socket closes with it', async () => {
    const ws = await connect(`${A.url.replace('http', 'ws')}/app/no-such-key?protocol=7&client=js&version=8.6.0`);
    const error = (await ws.next((f) => typeof f === 'object' && (f as { event?: string }).event === 'pusher:error')) as { data: { code: number } };
    expect(error.data.code).toBe(4001);
    expect((await ws.closed).code).toBe(4001);
  });

  test('a client event on a public channel gets pusher:error 4301', async () => {
    const ws = await connect(`${A.url.replace('http', 'ws')}/app/${APP.key}?protocol=7`);
    await ws.next((f) => (f as { event?: string }).event === 'pusher:connection_established');
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'public-room' } }));
    await ws.next((f) => (f as { event?: string }).event === 'pusher_internal:subscription_succeeded');
    ws.send(JSON.stringify({ event: 'client-hello', channel: 'public-room', data: {} }));
    expect(await ws.next((f) => (f as { event?: string }).event === 'pusher:error')).toMatchObject({ data: { code: 4301 } });
    ws.send(JSON.stringify({ event: 'pusher:ping', data: {} }));
    expect(await ws.next((f) => (f as { event?: string }).event === 'pusher:pong')).toMatchObject({ event: 'pusher:pong' });
    ws.close();
  });

  test("a trigger with info answers the channel's subscription_count and user_count (as Pusher does), per event in a batch too", async () => {
    const one = await client(A, APP, { user_id: 'info-1' });
    const two = await client(B, APP, { user_id: 'info-2' });
    const twoAgain = await client(B, APP, { user_id: 'info-2' });
    open.push(one, two, twoAgain);
    for (const c of [one, two, twoAgain]) expect(await c.subscribe('presence-info')).toEqual({ ok: true });
    const answer = await sdkA.trigger('presence-info', 'ping', { n: 1 }, { info: 'subscription_count,user_count' });
    expect(await answer.json()).toEqual({ channels: { 'presence-info': { subscription_count: 3, user_count: 2 } } });
    const batch = await sdkB.triggerBatch([
      { channel: 'presence-info', name: 'a', data: '1', info: 'user_count' },
      { channel: 'nobody-here', name: 'b', data: '2', info: 'subscription_count' },
      { channel: 'presence-info', name: 'c', data: '3' },
    ] as never);
    expect(await batch.json()).toEqual({ batch: [{ user_count: 2 }, { subscription_count: 0 }, {}] });
  });

  test('the HTTP API refuses a wrong secret, a stale timestamp, a tampered body and oversize data', async () => {
    const wrong = new PusherServer({ appId: APP.id, key: APP.key, secret: 'not-the-secret-0123456789', host: '127.0.0.1', port: String(A.port), useTLS: false });
    await expect(wrong.trigger('news', 'x', {})).rejects.toMatchObject({ status: 401 });
    await expect(sdkA.trigger('news', 'big', 'x'.repeat(11 * 1024))).rejects.toMatchObject({ status: 413 });
    await expect(serverFor(A, { ...APP, id: '9999' }).trigger('news', 'x', {})).rejects.toMatchObject({ status: 404 });

    // Signed by hand, as a PHP app does: right, then an hour old, then with another body.
    const post = (body: string, timestamp: number, signedBody = body) => {
      const query: Record<string, string> = { auth_key: APP.key, auth_timestamp: String(timestamp), auth_version: '1.0', body_md5: createHash('md5').update(signedBody).digest('hex') };
      const sorted = Object.keys(query).sort().map((k) => `${k}=${query[k]}`).join('&');
      const signature = createHmac('sha256', APP.secret).update(`POST\n/apps/${APP.id}/events\n${sorted}`).digest('hex');
      return fetch(`${A.url}/apps/${APP.id}/events?${sorted}&auth_signature=${signature}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    };
    const body = JSON.stringify({ name: 'by-hand', channel: 'news', data: '{"ok":true}' });
    const now = Math.floor(Date.now() / 1000);
    expect((await post(body, now)).status).toBe(200);
    const stale = await post(body, now - 3600);
    expect(stale.status).toBe(401);
    expect(await stale.json()).toMatchObject({ error: expect.stringContaining('auth_timestamp') });
    expect((await post(body.replace('news', 'other'), now, body)).status).toBe(401);
    expect((await post('{"name":"x","channel":"bad name!","data":"1"}', now)).status).toBe(400);
  });
});
