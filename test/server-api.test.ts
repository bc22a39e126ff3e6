/**
 * The server API against a cluster of instances on one real Postgres: every
 * answer the same on every instance, every change reaching connections on the
 * other instance, and an instance killed without a goodbye leaving every
 * answer (and every presence) within MESH_INSTANCE_TTL.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { collect, startCluster, type Instance } from './harness/cluster.ts';
import { openSse } from './harness/sse-client.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';
import { type Frame, type WsClient } from './harness/ws-client.ts';

const KEY = 'server-api-key-of-32-characters!';
const TTL_MS = 3000;
const { instances, databaseUrl } = await startCluster(['bun', 'node', 'bun'], { env: { MESH_API_KEY: KEY, MESH_INSTANCE_TTL: `${TTL_MS}ms` } });
const [A, B, C] = instances as [Instance, Instance, Instance];
const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
afterAll(() => sql.end());

/** Calls the server API of `on` with the key. */
async function api(on: Instance, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${on.url}/v1/mesh${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const isEvent = (event: string, channel: string, uid: string) => (f: Frame) => typeof f === 'object' && f.event === event && f.channel === channel && f.uid === uid;

/** A watcher with presence on `channel`: once it has seen `uid` join, that user's rows are written. */
async function watch(on: Instance, channel: string): Promise<WsClient> {
  const watcher = await on.login(`watcher-${channel}-${on.id}`);
  expect(await watcher.request({ op: 'subscribe', channel, presence: true })).toMatchObject({ success: true });
  return watcher;
}

async function joined(watcher: WsClient, channel: string, uid: string): Promise<void> {
  await watcher.next(isEvent('join', channel, uid), 10_000);
}

describe('who is online, the same answer on every instance', () => {
  test('GET /users/{uid}: every connection, its instance, transport and channels; unknown users are offline', async () => {
    const watcher = await watch(B, 'room_who');
    const ws = await A.login('who-1');
    const auth = ws.frames.find((f) => typeof f === 'object' && f.op === 'auth') as Record<string, unknown>;
    expect(auth.connection).toStartWith('A.');
    await ws.request({ op: 'subscribe', args: ['room_who'] });
    await joined(watcher, 'room_who', 'who-1');

    const sseWatcher = await watch(A, 'room_who_sse');
    const sse = openSse(`${B.url}/v1/sse?channel=room_who_sse&token=${await token('who-1')}`);
    const sseId = await sse.session();
    await joined(sseWatcher, 'room_who_sse', 'who-1');

    for (const on of instances) {
      const { status, body } = await api(on, 'GET', '/users/who-1');
      expect(status).toBe(200);
      expect(body.uid).toBe('who-1');
      expect(body.online).toBe(true);
      const byId = Object.fromEntries((body.connections as any[]).map((c) => [c.id, c]));
      expect(byId[auth.connection as string]).toMatchObject({ instance: 'A', transport: 'websocket', channels: ['room_who'] });
      expect(byId[sseId]).toMatchObject({ instance: 'B', transport: 'sse', channels: ['room_who_sse'] });
      expect(Date.parse(byId[sseId].connectedAt)).toBeGreaterThan(Date.now() - 60_000);
    }
    expect(await api(C, 'GET', '/users/nobody-at-all')).toEqual({ status: 200, body: { uid: 'nobody-at-all', online: false, connections: [] } });
    sse.close();
  });

  test('GET /users and /channels: listings with counts, filtered, paginated by cursor', async () => {
    const watcher = await watch(A, 'room_list');
    for (const [i, uid] of ['list-a', 'list-b', 'list-c'].entries()) {
      const client = await instances[i]!.login(uid);
      await client.request({ op: 'subscribe', args: ['room_list', `room_list_${uid}`] });
      await joined(watcher, 'room_list', uid);
    }
    const all = await api(B, 'GET', '/users?channel=room_list');
    // The watcher is subscribed too.
    expect(all.body).toMatchObject({ users: ['list-a', 'list-b', 'list-c', 'watcher-room_list-A'], count: 4, next: null });
    const first = await api(C, 'GET', '/users?channel=room_list&limit=2');
    expect(first.body).toMatchObject({ users: ['list-a', 'list-b'], count: 4 });
    const second = await api(A, 'GET', `/users?channel=room_list&limit=2&cursor=${first.body.next}`);
    expect(second.body).toMatchObject({ users: ['list-c', 'watcher-room_list-A'], count: 4 });
    expect((await api(A, 'GET', '/users')).body.users).toContain('list-b');

    const channels = await api(B, 'GET', '/channels?prefix=room_list');
    expect(channels.body.channels).toEqual([
      { channel: 'room_list', subscribers: 4, users: 4 },
      { channel: 'room_list_list-a', subscribers: 1, users: 1 },
      { channel: 'room_list_list-b', subscribers: 1, users: 1 },
      { channel: 'room_list_list-c', subscribers: 1, users: 1 },
    ]);
    expect(channels.body.count).toBe(4);
    const paged = await api(C, 'GET', '/channels?prefix=room_list_&limit=2');
    expect(paged.body.channels.map((c: any) => c.channel)).toEqual(['room_list_list-a', 'room_list_list-b']);
    const rest = await api(C, 'GET', `/channels?prefix=room_list_&limit=2&cursor=${paged.body.next}`);
    expect(rest.body).toMatchObject({ channels: [{ channel: 'room_list_list-c' }], next: null });
    expect((await api(A, 'GET', '/channels?prefix=no_such_')).body).toEqual({ channels: [], count: 0, next: null });
    // One channel by name, from any instance; one nobody is in is not a 404.
    expect((await api(C, 'GET', '/channels/room_list')).body).toEqual({ channel: 'room_list', occupied: true, subscribers: 4, users: 4 });
    expect((await api(A, 'GET', '/channels/room_list_list-b')).body).toEqual({ channel: 'room_list_list-b', occupied: true, subscribers: 1, users: 1 });
    expect((await api(B, 'GET', '/channels/room_lis')).body).toEqual({ channel: 'room_lis', occupied: false, subscribers: 0, users: 0 });
  });
});

describe('presence for clients', () => {
  test('subscribe with presence: current members, then one join per user (not per tab) and one leave when the last tab goes', async () => {
    const watcher = await B.login('pres-watch');
    // The list is as of the reply, which comes once the watcher's own row is written: the watcher is in it.
    expect(await watcher.request({ op: 'subscribe', channel: 'room_pres', presence: true })).toMatchObject({ success: true, members: { room_pres: ['pres-watch'] } });
    const first = await A.login('pres-1');
    await first.request({ op: 'subscribe', args: ['room_pres'] });
    await joined(watcher, 'room_pres', 'pres-1');
    const late = await C.login('pres-late');
    expect(await late.request({ op: 'subscribe', channel: 'room_pres', presence: true })).toMatchObject({ members: { room_pres: ['pres-1', 'pres-late', 'pres-watch'] } });

    const tab1 = await C.login('pres-2');
    const tab2 = await A.login('pres-2');
    await tab1.request({ op: 'subscribe', args: ['room_pres'] });
    await tab2.request({ op: 'subscribe', args: ['room_pres'] });
    for (const w of [watcher, late]) await w.next(isEvent('join', 'room_pres', 'pres-2'));
    tab1.close();
    // The second tab is still there: no leave yet. It goes when tab2 leaves too.
    await tab2.request({ op: 'unsubscribe', args: ['room_pres'] });
    for (const w of [watcher, late]) await w.next(isEvent('leave', 'room_pres', 'pres-2'));
    const events = watcher.frames.filter((f) => typeof f === 'object' && f.uid === 'pres-2' && (f.event === 'join' || f.event === 'leave'));
    expect(events.map((f) => (f as any).event)).toEqual(['join', 'leave']);
    // Its own join was folded into its list, never sent to it as news.
    expect(watcher.frames.some((f) => typeof f === 'object' && f.event === 'join' && f.uid === 'pres-watch')).toBe(false);
  });
});

describe('a channel is watched only while a client watches it', () => {
  /** The join/leave events stored for `channel`, as "event uid". */
  const stored = async (channel: string) =>
    (await sql<{ data: string }[]>`select data from mesh_message where channel = ${`$presence:${channel}`} order by id`).map((r) => {
      const e = JSON.parse(r.data) as { event: string; uid: string };
      return `${e.event} ${e.uid}`;
    });
  /** The connections watching `channel` in the cluster's presence. */
  const watchers = async (channel: string) => (await sql<{ connection: string }[]>`select connection from mesh_subscription where channel = ${`$presence:${channel}`}`).map((r) => r.connection);
  const until = (probe: () => Promise<boolean>, what: string) => pollUntil(probe, 10_000, what);

  test('joins and leaves are stored while a watch lasts, and none before it or after unsubscribe, another login or close', async () => {
    // Nobody watches: a member's join is written (its reply waits for that), its event is not.
    const early = await A.login('watch-early');
    await early.request({ op: 'subscribe', args: ['room_watched'] });
    expect((await api(C, 'GET', '/channels/room_watched')).body).toMatchObject({ subscribers: 1 });
    expect(await stored('room_watched')).toEqual([]);

    const watcher = await B.login('watch-w');
    const reply = await watcher.request({ op: 'subscribe', channel: 'room_watched', presence: true });
    expect(reply).toMatchObject({ success: true, members: { room_watched: ['watch-early', 'watch-w'] } });
    const connection = (watcher.frames.find((f) => typeof f === 'object' && f.op === 'auth') as { connection: string }).connection;
    expect(await watchers('room_watched')).toEqual([connection]);
    // The watch is not a channel anyone is in: the server API lists none.
    expect((await api(A, 'GET', '/users/watch-w')).body.connections[0].channels).toEqual(['room_watched']);
    expect((await api(A, 'GET', '/channels?prefix=room_watch')).body.channels).toEqual([{ channel: 'room_watched', subscribers: 2, users: 2 }]);

    // Joined on another instance right after the reply: heard.
    const second = await C.login('watch-second');
    await second.request({ op: 'subscribe', args: ['room_watched'] });
    await joined(watcher, 'room_watched', 'watch-second');
    expect(await stored('room_watched')).toEqual(['join watch-w', 'join watch-second']);

    // Unsubscribed: the watch goes (its own leave, in the same batch, is the last event written), and with it the events.
    await watcher.request({ op: 'unsubscribe', args: ['room_watched'] });
    await until(async () => (await watchers('room_watched')).length === 0, 'the watch gone after unsubscribe');
    second.close();
    await until(async () => (await api(A, 'GET', '/channels/room_watched')).body.subscribers === 1, 'watch-second gone');
    expect(await stored('room_watched')).toEqual(['join watch-w', 'join watch-second', 'leave watch-w']);

    // Watched again, then the connection logs in as someone else: the watch is not theirs to keep.
    await watcher.request({ op: 'subscribe', channel: 'room_watched', presence: true });
    expect(await watchers('room_watched')).toEqual([connection]);
    expect(await watcher.request({ op: 'auth', token: await token('watch-other') })).toMatchObject({ success: true });
    await until(async () => (await watchers('room_watched')).length === 0, 'the watch gone after another login');

    // Watched again, then closed.
    await watcher.request({ op: 'subscribe', channel: 'room_watched', presence: true });
    expect(await watchers('room_watched')).toEqual([connection]);
    watcher.close();
    await until(async () => (await watchers('room_watched')).length === 0, 'the watch gone after close');
    const third = await A.login('watch-third');
    await third.request({ op: 'subscribe', args: ['room_watched'] });
    expect((await api(C, 'GET', '/channels/room_watched')).body).toMatchObject({ subscribers: 2 });
    expect((await stored('room_watched')).filter((e) => e.endsWith('watch-third'))).toEqual([]);
    for (const c of [early, third]) c.close();
  });
});

describe('membership from the backend reaches connections on other instances', () => {
  test('POST /users/{uid}/subscribe on A: the user hears the channel on B at once; unsubscribe stops it', async () => {
    const client = await B.login('member-1');
    // Connected, but maybe not written yet: the command does not need presence rows.
    expect(await api(A, 'POST', '/users/member-1/subscribe', { channels: ['room_joined', 'user_member-1'] })).toMatchObject({ status: 200, body: { success: true } });
    expect((await api(A, 'POST', '/publish', { c: 'room_joined', d: 'right after joinGroup' })).status).toBe(200);
    expect(await client.next((f) => f === 'right after joinGroup')).toBe('right after joinGroup');
    await api(C, 'POST', '/users/member-1/unsubscribe', { channels: ['room_joined'] });
    await api(A, 'POST', '/publish', [{ c: 'room_joined', d: 'after leaveGroup' }, { c: 'user:member-1', d: 'marker' }]);
    await client.next((f) => f === 'marker');
    expect(client.texts).not.toContain('after leaveGroup');
  });

  test('/connections/{id}/subscribe targets one connection; DELETE /channels/{c}/subscribers empties a channel everywhere', async () => {
    const one = await A.login('conn-1');
    const other = await C.login('conn-1');
    for (const c of [one, other]) await c.request({ op: 'subscribe', channel: '@user' });
    const id = (one.frames[0] as Record<string, string>).connection!;
    await api(B, 'POST', `/connections/${id}/subscribe`, { channels: ['room_one'] });
    await api(B, 'POST', '/publish', { c: 'room_one', d: 'only the first' });
    await one.next((f) => f === 'only the first');
    await other.request({ op: 'subscribe', args: ['room_one'] });
    await api(C, 'DELETE', '/channels/room_one/subscribers');
    await api(B, 'POST', '/publish', [{ c: 'room_one', d: 'nobody hears this' }, { c: 'user:conn-1', d: 'marker-2' }]);
    for (const c of [one, other]) await c.next((f) => f === 'marker-2');
    expect([...one.texts, ...other.texts]).not.toContain('nobody hears this');
  });

  test('DELETE /connections/{id} and /users/{uid}/connections close with 4003 and the reason', async () => {
    const a = await A.login('kick-1');
    const b = await B.login('kick-1');
    const c = await C.login('kick-2');
    const id = (a.frames[0] as Record<string, string>).connection!;
    expect((await api(C, 'DELETE', `/connections/${id}?reason=${encodeURIComponent('bye now')}`)).status).toBe(200);
    expect(await a.closed).toEqual({ code: 4003, reason: 'bye now' });
    expect((await api(A, 'DELETE', '/users/kick-2/connections')).status).toBe(200);
    expect(await c.closed).toEqual({ code: 4003, reason: 'closed by the server' });
    expect(b.socket.readyState).toBe(WebSocket.OPEN);
    expect((await api(A, 'DELETE', '/connections/Z.no-such-connection')).status).toBe(200);
  });
});

describe('publish: exclude and everyone', () => {
  test('"exclude" leaves the sender out of a room message; {"all":true} reaches every live connection, subscribed or not', async () => {
    const sender = await A.login('ex-1');
    const peer = await B.login('ex-2');
    for (const c of [sender, peer]) await c.request({ op: 'subscribe', args: ['room_ex'] });
    const senderId = (sender.frames[0] as Record<string, string>).connection!;
    expect((await api(C, 'POST', '/publish', { c: 'room_ex', d: 'to the others', exclude: [senderId] })).status).toBe(200);
    await peer.next((f) => f === 'to the others');
    const lonely = await C.login('ex-3');
    expect((await api(B, 'POST', '/publish', { all: true, d: 'to everyone' })).status).toBe(200);
    for (const c of [sender, peer, lonely]) expect(await c.next((f) => f === 'to everyone')).toBe('to everyone');
    expect(sender.texts).not.toContain('to the others');
  });
});

describe('history', () => {
  test('the last N messages oldest first, then from a position; subscribing with since=position goes on without a gap', async () => {
    const ids = ((await api(A, 'POST', '/publish', ['h1', 'h2', 'h3', 'h4', 'h5'].map((d) => ({ c: 'room_hist', d })))).body as { ids: number[] }).ids;
    await api(A, 'POST', '/publish', { channel: 'room_hist', data: { n: 6 } });
    const last = await api(B, 'GET', '/channels/room_hist/history?limit=3');
    // What the server API published arrives as it was sent: non-string data as its JSON text.
    expect(last.body.messages.map((m: any) => m.data)).toEqual(['h4', 'h5', '{"n":6}']);
    const from = await api(C, 'GET', `/channels/room_hist/history?since=${ids[0]}&limit=2`);
    expect(from.body).toMatchObject({ channel: 'room_hist', messages: [{ id: ids[1], data: 'h2' }, { id: ids[2], data: 'h3' }], position: ids[2] });
    const client = await B.login('hist-1');
    await client.request({ op: 'subscribe', channel: 'room_hist', since: from.body.position });
    await api(A, 'POST', '/publish', { c: 'room_hist', d: 'h7' });
    const isHistory = (f: unknown) => f === 'h4' || f === 'h5' || f === 'h7' || (typeof f === 'object' && (f as { n?: number }).n === 6);
    expect(await collect(client, 4, isHistory)).toEqual(['h4', 'h5', '{"n":6}', 'h7']);
    expect((await api(A, 'GET', '/channels/room_nothing/history')).body).toMatchObject({ channel: 'room_nothing', messages: [] });
  });
});

describe('refusals', () => {
  test('no key 401; malformed bodies, reserved or bad channel names and bad paging 400, each with its code', async () => {
    const noKey = await fetch(`${A.url}/v1/mesh/users/x`);
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({ code: 'ERR_BAD_API_KEY' });
    const cases: [string, string, unknown, string][] = [
      ['POST', '/users/u/subscribe', '{"channels":', 'ERR_BAD_JSON'],
      ['POST', '/users/u/subscribe', { channels: [] }, 'ERR_BAD_ARGS'],
      ['POST', '/users/u/subscribe', { channels: ['$all'] }, 'ERR_BAD_CHANNEL'],
      ['POST', '/connections/A.x/subscribe', { channels: ['has space'] }, 'ERR_BAD_CHANNEL'],
      ['POST', '/connections/x;region=ams/subscribe', { channels: ['room'] }, 'ERR_BAD_ARGS'],
      ['POST', '/publish', { c: '$cmd', d: 'x' }, 'ERR_BAD_CHANNEL'],
      ['POST', '/publish', { c: 'room', d: 'x', exclude: 'A.1' }, 'ERR_BAD_ARGS'],
      ['GET', '/users?limit=0', undefined, 'ERR_BAD_ARGS'],
      ['GET', '/channels?limit=many', undefined, 'ERR_BAD_ARGS'],
      ['GET', '/channels/room/history?since=-1', undefined, 'ERR_BAD_ARGS'],
    ];
    for (const [method, path, body, code] of cases) {
      const res = await api(B, method, path, body);
      expect(`${method} ${path} -> ${res.status} ${res.body.code}`).toBe(`${method} ${path} -> 400 ${code}`);
    }
  });

  test('the OpenAPI document is served without a key and describes every route', async () => {
    const res = await fetch(`${C.url}/v1/mesh/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toStartWith('3.1');
    expect(Object.keys(doc.paths)).toContain('/v1/mesh/users/{uid}');
  });
});

describe('an instance killed without a goodbye', () => {
  test('its connections leave every answer and every presence within MESH_INSTANCE_TTL', async () => {
    const watcher = await watch(A, 'room_kill');
    const doomed = await C.login('kill-1');
    await doomed.request({ op: 'subscribe', args: ['room_kill'] });
    await joined(watcher, 'room_kill', 'kill-1');
    expect((await api(B, 'GET', '/users/kill-1')).body.online).toBe(true);
    const killedAt = Date.now();
    await C.stop('SIGKILL');
    await watcher.next(isEvent('leave', 'room_kill', 'kill-1'), TTL_MS + 2000);
    expect(Date.now() - killedAt).toBeLessThan(TTL_MS);
    for (const on of [A, B]) expect((await api(on, 'GET', '/users/kill-1')).body).toMatchObject({ online: false, connections: [] });
    expect((await api(B, 'GET', '/channels?prefix=room_kill')).body.channels).toEqual([{ channel: 'room_kill', subscribers: 1, users: 1 }]);
  }, 30_000);
});
