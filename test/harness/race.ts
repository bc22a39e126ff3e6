/**
 * The race harness: clients across three instances doing seeded random
 * interleavings of connect, auth, subscribe (plain and presence), unsubscribe,
 * close and drop (no close frame), Pusher sockets joining and leaving presence
 * channels, and one instance SIGKILLed and started again, all with random
 * delays between pgmesh and Postgres. After quiescence the property is checked
 * on every instance: the server API, the Pusher API and member lists equal the
 * live connections the clients hold, and so does the member list each pgmesh
 * client watching a lobby holds (its subscribe reply's list, then every join
 * and leave event it was sent); webhook user_online/user_offline,
 * connect/disconnect (per connection), channel_occupied/channel_vacated and
 * member_added/member_removed pair up and end where the truth is.
 *
 * The plan (who does what, in which order) comes from the seed alone, so a
 * failure replays with its seed; the timings around it are the machine's.
 */
import { createServer, type Server } from 'node:http';
import { channelAuth } from '../../src/pusher/signing.ts';
import { freshDatabase } from './postgres.ts';
import { startProcess, type MeshProcess, type RuntimeName } from './process.ts';
import { rawWebSocket, type RawWsClient } from './raw-ws.ts';
import { startLatencyProxy } from './tcp-proxy.ts';
import { token } from './tokens.ts';
import { pollUntil } from './waiter.ts';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.ts';

export interface RaceSettings {
  seed: number;
  /** Client actions in the run. */
  steps: number;
  /** Whether one instance is SIGKILLed mid-run (and started again a little later). */
  kill: boolean;
  /** The most each chunk between pgmesh and Postgres is held, in ms. */
  jitterMs: number;
}

const RUNTIMES: RuntimeName[] = ['node', 'bun', 'node'];
const USERS = ['ann', 'bob', 'cy', 'dee', 'eve'];
const ROOMS = ['r0', 'r1', 'r2'];
const LOBBIES = ['p0', 'p1'];
const MEMBERS = ['m1', 'm2', 'm3'];
const PRESENCE = ['presence-x', 'presence-y'];
const APP = { id: '77', key: 'race-key', secret: 'race-secret-0123456789' };
const SECRET = 'race-webhook-secret-0123456789';
const TTL_MS = 3000;
const API_KEY = 'race-api-key-0123456789';

/** A small, fast, seedable generator (mulberry32). */
export function randomFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Step =
  | { actor: number; kind: 'mesh'; op: 'open'; instance: number; uid: string }
  | { actor: number; kind: 'mesh'; op: 'subscribe'; channel: string; presence: boolean }
  | { actor: number; kind: 'mesh'; op: 'unsubscribe'; channel: string }
  | { actor: number; kind: 'pusher'; op: 'open'; instance: number; member: string }
  | { actor: number; kind: 'pusher'; op: 'join' | 'leave'; channel: string }
  | { actor: number; kind: 'mesh' | 'pusher'; op: 'close' | 'drop' }
  | { kind: 'instance'; op: 'kill' | 'restart'; instance: number };

/** The run's plan: every step and the pause before it, from the seed alone. */
export function planOf(settings: RaceSettings): { pauseMs: number; step: Step }[] {
  const random = randomFrom(settings.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const actors = 14;
  const plan: { pauseMs: number; step: Step }[] = [];
  const killAt = settings.kill ? Math.floor(settings.steps * (0.3 + random() * 0.3)) : -1;
  for (let i = 0; i < settings.steps; i++) {
    if (i === killAt) plan.push({ pauseMs: 0, step: { kind: 'instance', op: 'kill', instance: 2 } });
    if (i === killAt + Math.floor(settings.steps / 5)) plan.push({ pauseMs: 0, step: { kind: 'instance', op: 'restart', instance: 2 } });
    const actor = Math.floor(random() * actors);
    const kind = actor < 10 ? 'mesh' : 'pusher';
    const r = random();
    const pauseMs = random() < 0.6 ? 0 : Math.floor(random() * 8);
    let step: Step;
    if (r < 0.25) step = kind === 'mesh' ? { actor, kind, op: 'open', instance: Math.floor(random() * 3), uid: pick(USERS) } : { actor, kind, op: 'open', instance: Math.floor(random() * 3), member: pick(MEMBERS) };
    else if (r < 0.55) step = kind === 'mesh' ? { actor, kind, op: 'subscribe', ...(random() < 0.5 ? { channel: pick(ROOMS), presence: false } : { channel: pick(LOBBIES), presence: true }) } : { actor, kind, op: 'join', channel: pick(PRESENCE) };
    else if (r < 0.75) step = kind === 'mesh' ? { actor, kind, op: 'unsubscribe', channel: pick([...ROOMS, ...LOBBIES]) } : { actor, kind, op: 'leave', channel: pick(PRESENCE) };
    else step = { actor, kind, op: random() < 0.5 ? 'close' : 'drop' };
    plan.push({ pauseMs, step });
  }
  return plan;
}

/** One client connection as the harness knows it: what it sent, what it was told, whether it is still open. */
interface Client {
  kind: 'mesh' | 'pusher';
  instance: number;
  /** pgmesh: the user; Pusher: the member's user_id. */
  user: string;
  socket: RawWsClient;
  open: boolean;
  /** Frames that expect a reply (pgmesh ops; Pusher subscribes), in the order sent. */
  sent: { op: string; channel: string }[];
  /** Pusher: the socket_id, once connection_established came. */
  socketId?: Promise<string>;
}

interface PusherEvent {
  name: string;
  channel: string;
  user_id?: string;
}

/** What a run did: the clients it opened, those live at the end, the users online, the webhook events received. */
export interface RaceRun {
  steps: number;
  clients: number;
  live: number;
  online: number;
  hooks: number;
  pusherHooks: number;
  /** Member lists of watching clients checked at the end. */
  watched: number;
}

/** Runs one race and checks its property; throws with the seed and what differed. */
export async function runRace(settings: RaceSettings): Promise<RaceRun> {
  const database = new URL(await freshDatabase());
  const jitter = randomFrom(settings.seed ^ 0x5bd1e995);
  const proxy = await startLatencyProxy(Number(database.port), () => jitter() * settings.jitterMs);
  database.port = String(proxy.port);
  const hooks = await startWebhookReceiver(SECRET);
  const pusherHooks = await startPusherReceiver();
  const env = {
    DATABASE_URL: database.toString(),
    MESH_INSTANCE_TTL: `${TTL_MS}ms`,
    MESH_HEARTBEAT: '1s',
    MESH_WEBHOOK_URL: hooks.url,
    MESH_WEBHOOK_SECRET: SECRET,
    MESH_API_KEY: API_KEY,
    MESH_MAX_FRAMES_PER_SECOND: '0',
    PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}`,
    PUSHER_WEBHOOKS: `${APP.id}=${pusherHooks.url}`,
  };
  const start = (i: number) => startProcess(RUNTIMES[i]!, { ...env, MESH_INSTANCE_ID: `R${i}` });
  const instances: (MeshProcess | null)[] = await Promise.all(RUNTIMES.map((_, i) => start(i)));
  const clients: Client[] = [];
  const byActor = new Map<number, Client>();
  const fail = (what: string) => new Error(`race seed ${settings.seed} (replay: PGMESH_RACE_SEED=${settings.seed}): ${what}`);
  try {
    for (const { pauseMs, step } of planOf(settings)) {
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      await perform(step);
    }
    // Quiescence, from the clients' side: every frame that expects a reply got one.
    for (const c of clients) await settle(c);
    const truth = truthOf(clients);
    const live = instances.flatMap((p) => (p === null ? [] : [p]));
    await pollUntil(async () => (await differences(live, truth)).length === 0, TTL_MS * 4 + 10_000, 'the APIs agree with the live connections').catch(async () => {
      throw fail(`the APIs disagree with the live connections:\n${(await differences(live, truth)).join('\n')}\n${await whatEachSaw(clients, live[0]!)}`);
    });
    // The leaves of a killed instance's members reach the watchers after its reaping: waited for, with a deadline.
    await pollUntil(async () => watcherDifferences(clients, truth).length === 0, TTL_MS * 4 + 10_000, "watchers' member lists agree with the live connections").catch(() => {
      throw fail(`watchers' member lists:\n${watcherDifferences(clients, truth).join('\n')}`);
    });
    await pollUntil(async () => hookDifferences(hooks, pusherHooks.events(), truth).length === 0, 20_000, 'the webhooks pair up').catch(() => {
      throw fail(`webhooks:\n${hookDifferences(hooks, pusherHooks.events(), truth).join('\n')}`);
    });
    return {
      steps: settings.steps,
      clients: clients.length,
      live: clients.filter((c) => c.open).length,
      online: truth.online.size,
      hooks: hooks.delivered().length,
      pusherHooks: pusherHooks.events().length,
      watched: clients.filter((c) => c.open && c.kind === 'mesh').reduce((n, c) => n + [...heldBy(c).channels].filter((ch) => LOBBIES.includes(ch)).length, 0),
    };
  } finally {
    for (const c of clients) c.socket.socket.destroy();
    await Promise.all(instances.map((p) => p?.stop()));
    await Promise.all([hooks.close(), pusherHooks.close(), proxy.close()]);
  }

  async function perform(step: Step): Promise<void> {
    if (step.kind === 'instance') {
      if (step.op === 'kill') {
        const victim = instances[step.instance];
        instances[step.instance] = null;
        await victim?.stop('SIGKILL');
      } else if (instances[step.instance] === null) {
        instances[step.instance] = await start(step.instance);
      }
      return;
    }
    const current = byActor.get(step.actor);
    if (step.op === 'open') {
      const server = instances[step.instance];
      if (server === null || (current?.open ?? false)) return;
      const client = await openClient(step, server);
      if (client === null) return;
      clients.push(client);
      byActor.set(step.actor, client);
      return;
    }
    if (current === undefined || !current.open) return;
    if (step.op === 'close' || step.op === 'drop') {
      current.open = false;
      if (step.op === 'close') current.socket.close();
      else current.socket.socket.destroy();
      return;
    }
    if (step.kind === 'mesh' && step.op === 'subscribe') {
      current.sent.push({ op: step.presence ? 'presence' : 'subscribe', channel: step.channel });
      current.socket.send(JSON.stringify({ op: 'subscribe', channel: step.channel, ...(step.presence ? { presence: true } : {}) }));
    } else if (step.kind === 'mesh' && step.op === 'unsubscribe') {
      current.sent.push({ op: 'unsubscribe', channel: step.channel });
      current.socket.send(JSON.stringify({ op: 'unsubscribe', channel: step.channel }));
    } else if (step.kind === 'pusher' && step.op === 'join') {
      const socketId = await current.socketId!;
      const channelData = JSON.stringify({ user_id: current.user });
      current.sent.push({ op: 'join', channel: step.channel });
      current.socket.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: step.channel, auth: channelAuth(APP, socketId, step.channel, channelData), channel_data: channelData } }));
    } else if (step.kind === 'pusher' && step.op === 'leave') {
      // No reply in Pusher's protocol: the harness's truth keeps the order the frames were sent in.
      current.sent.push({ op: 'leave', channel: step.channel });
      current.socket.send(JSON.stringify({ event: 'pusher:unsubscribe', data: { channel: step.channel } }));
    }
  }

  async function openClient(step: Extract<Step, { op: 'open' }>, server: MeshProcess): Promise<Client | null> {
    const path = step.kind === 'mesh' ? '/v1/ws' : `/app/${APP.key}`;
    let socket: RawWsClient;
    try {
      socket = await rawWebSocket(server.port, path);
    } catch {
      return null; // its instance is going away: a connect that failed is no connection
    }
    const client: Client = { kind: step.kind, instance: step.instance, user: 'uid' in step ? step.uid : step.member, socket, open: true, sent: [] };
    socket.socket.on('close', () => (client.open = false));
    if (step.kind === 'mesh') {
      client.sent.push({ op: 'auth', channel: '' });
      socket.send(JSON.stringify({ op: 'auth', token: await token(client.user) }));
    } else {
      client.socketId = socket
        .until(() => socket.texts.length > 0 || !client.open, 10_000)
        .then(() => JSON.parse(JSON.parse(socket.texts[0] ?? '{"data":"{}"}').data).socket_id as string);
      await client.socketId;
    }
    return client;
  }

  /** Waits until every frame of `c` that expects a reply got one (or the socket closed). */
  async function settle(c: Client): Promise<void> {
    if (!c.open) return;
    if (c.kind === 'pusher') {
      // A marker subscribe: frames run in order, so once it is answered every frame before it is done.
      c.sent.push({ op: 'marker', channel: 'marker' });
      c.socket.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'marker' } }));
    }
    const expected = c.sent.filter((s) => s.op !== 'leave').length;
    await c.socket.until(() => !c.open || replies(c).length >= expected, 15_000).catch(() => {
      throw fail(`a ${c.kind} client on instance ${c.instance} got ${replies(c).length} of ${expected} replies: ${c.socket.texts.join(' ')}`);
    });
  }
}

/** The frames of a client that answer what it sent, in order. */
function replies(c: Client): Record<string, unknown>[] {
  const frames = c.socket.texts.map((t) => JSON.parse(t) as Record<string, unknown>);
  if (c.kind === 'mesh') return frames.filter((f) => typeof f.op === 'string' && ['auth', 'subscribe', 'unsubscribe'].includes(f.op as string));
  return frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded' || f.event === 'pusher:subscription_error');
}

interface Truth {
  /** uid -> its live pgmesh connections. */
  online: Map<string, number>;
  /** pgmesh channel -> the uids of its live subscribers, one per connection. */
  channels: Map<string, string[]>;
  /** Pusher presence channel -> its members' user_ids. */
  members: Map<string, Set<string>>;
  /** The ids of the live authenticated pgmesh connections (each auth reply names its connection). */
  connections: Set<string>;
}

/** The channels a client holds, and its connection id if its auth got through, from what it sent and was answered. */
function heldBy(c: Client): { connection: string | null; channels: Set<string> } {
  const answers = replies(c);
  const channels = new Set<string>();
  let connection: string | null = null;
  let answered = 0;
  for (const sent of c.sent) {
    if (sent.op === 'leave') {
      channels.delete(sent.channel);
      continue;
    }
    const reply = answers[answered++];
    const good = reply !== undefined && (c.kind === 'mesh' ? reply.success === true : reply.event === 'pusher_internal:subscription_succeeded');
    if (!good) continue;
    if (sent.op === 'auth') connection = reply.connection as string;
    else if (sent.op === 'subscribe' || sent.op === 'presence' || sent.op === 'join') channels.add(sent.channel);
    else if (sent.op === 'unsubscribe') channels.delete(sent.channel);
  }
  return { connection, channels };
}

/** What the live connections add up to, from what each sent and was answered. */
function truthOf(clients: Client[]): Truth {
  const truth: Truth = { online: new Map(), channels: new Map(), members: new Map(PRESENCE.map((p) => [p, new Set()])), connections: new Set() };
  for (const c of clients) {
    if (!c.open) continue;
    const { connection, channels } = heldBy(c);
    if (connection !== null) {
      truth.online.set(c.user, (truth.online.get(c.user) ?? 0) + 1);
      truth.connections.add(connection);
    }
    for (const channel of channels) {
      if (c.kind === 'mesh') truth.channels.set(channel, [...(truth.channels.get(channel) ?? []), c.user]);
      else truth.members.get(channel)!.add(c.user);
    }
  }
  return truth;
}

/** The member list a pgmesh client holds for each lobby it watches: its subscribe reply's, then each join and leave it was sent. */
function watchedBy(c: Client): Map<string, Set<string>> {
  const lists = new Map<string, Set<string>>();
  for (const text of c.socket.texts) {
    const f = JSON.parse(text) as { op?: string; success?: boolean; channels?: string[]; members?: Record<string, string[]>; event?: string; channel?: string; uid?: string };
    if (f.op === 'subscribe' && f.success === true && f.members) for (const [lobby, uids] of Object.entries(f.members)) lists.set(lobby, new Set(uids));
    else if (f.op === 'unsubscribe' && f.success === true) for (const lobby of f.channels ?? []) lists.delete(lobby);
    else if (f.event === 'join' && lists.has(f.channel!)) lists.get(f.channel!)!.add(f.uid!);
    else if (f.event === 'leave' && lists.has(f.channel!)) lists.get(f.channel!)!.delete(f.uid!);
  }
  return lists;
}

/** Where a watching client's member list differs from the lobby's live members (empty: none does). */
function watcherDifferences(clients: Client[], truth: Truth): string[] {
  const out: string[] = [];
  for (const c of clients) {
    if (!c.open || c.kind !== 'mesh') continue;
    const lists = watchedBy(c);
    for (const lobby of heldBy(c).channels) {
      if (!LOBBIES.includes(lobby)) continue;
      const held = [...(lists.get(lobby) ?? [])].sort();
      const expected = [...new Set(truth.channels.get(lobby) ?? [])].sort();
      if (JSON.stringify(held) !== JSON.stringify(expected)) out.push(`${c.user} on instance ${c.instance} holds ${lobby} members ${JSON.stringify(held)}, live ${JSON.stringify(expected)}`);
    }
  }
  return out;
}

const headers = { authorization: `Bearer ${API_KEY}` };
const getJson = async (url: string) => (await fetch(url, { headers })).json() as Promise<Record<string, unknown>>;

/** Where an instance's answers differ from the truth (empty: they agree). */
async function differences(instances: MeshProcess[], truth: Truth): Promise<string[]> {
  const out: string[] = [];
  const users = [...truth.online.keys()].sort();
  const channels = [...truth.channels].map(([channel, uids]) => ({ channel, subscribers: uids.length, users: new Set(uids).size })).sort((a, b) => a.channel.localeCompare(b.channel));
  for (const p of instances) {
    const where = `instance ${p.url}`;
    const listed = ((await getJson(`${p.url}/v1/mesh/users?limit=1000`)).users as string[]) ?? [];
    if (JSON.stringify(listed) !== JSON.stringify(users)) out.push(`${where}: users ${JSON.stringify(listed)}, live ${JSON.stringify(users)}`);
    const seen = (((await getJson(`${p.url}/v1/mesh/channels?limit=1000`)).channels as { channel: string; subscribers: number; users: number }[]) ?? []).filter((c) => !c.channel.startsWith('$'));
    if (JSON.stringify(seen) !== JSON.stringify(channels)) out.push(`${where}: channels ${JSON.stringify(seen)}, live ${JSON.stringify(channels)}`);
    for (const uid of USERS) {
      const user = await getJson(`${p.url}/v1/mesh/users/${uid}`);
      const expected = truth.online.get(uid) ?? 0;
      if ((user.connections as unknown[]).length !== expected) out.push(`${where}: ${uid} has ${(user.connections as unknown[]).length} connections, live ${expected}`);
    }
    for (const lobby of LOBBIES) {
      const members = ((await getJson(`${p.url}/v1/mesh/users?channel=${lobby}&limit=1000`)).users as string[]) ?? [];
      const expected = [...new Set(truth.channels.get(lobby) ?? [])].sort();
      if (JSON.stringify(members) !== JSON.stringify(expected)) out.push(`${where}: ${lobby} members ${JSON.stringify(members)}, live ${JSON.stringify(expected)}`);
    }
    for (const channel of PRESENCE) {
      const members = (await pusherUsers(p, channel)).sort();
      const expected = [...truth.members.get(channel)!].sort();
      if (JSON.stringify(members) !== JSON.stringify(expected)) out.push(`${where}: Pusher ${channel} users ${JSON.stringify(members)}, live ${JSON.stringify(expected)}`);
    }
  }
  return out;
}

/** A presence channel's members through the Pusher HTTP API, signed as the server libraries sign. */
async function pusherUsers(p: MeshProcess, channel: string): Promise<string[]> {
  const { default: Pusher } = await import('pusher');
  const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(p.port), useTLS: false });
  const response = await sdk.get({ path: `/channels/${channel}/users` });
  return ((await response.json()) as { users: { id: string }[] }).users.map((u) => u.id);
}

/** For a failure's message: what each pgmesh client sent and was answered, and what the server API says of each user. */
async function whatEachSaw(clients: Client[], instance: MeshProcess): Promise<string> {
  const seen = clients.filter((c) => c.kind === 'mesh').map((c) => `${c.user} on R${c.instance}, ${c.open ? 'open' : 'gone'}: sent ${c.sent.map((x) => `${x.op} ${x.channel}`.trim()).join(', ')}; got ${c.socket.texts.join(' ')}`);
  const said = await Promise.all(USERS.map(async (u) => (await fetch(`${instance.url}/v1/mesh/users/${u}`, { headers })).text()));
  return `clients:\n${seen.join('\n')}\nthe server API:\n${said.join('\n')}`;
}

/** Where the webhooks fail to pair up, or end somewhere other than the truth. */
function hookDifferences(hooks: WebhookReceiver, pusher: PusherEvent[], truth: Truth): string[] {
  const out: string[] = [];
  const online = new Map<string, string[]>();
  for (const e of hooks.delivered()) {
    if (e.type !== 'user_online' && e.type !== 'user_offline') continue;
    online.set(e.uid as string, [...(online.get(e.uid as string) ?? []), e.type]);
  }
  for (const uid of USERS) out.push(...alternation(`user ${uid}`, online.get(uid) ?? [], 'user_online', 'user_offline', truth.online.has(uid)));
  // Each connection: connect, then disconnect once it is gone; each channel: occupied and vacated in turn.
  const connections = new Map<string, string[]>();
  const channels = new Map<string, string[]>();
  for (const e of hooks.delivered()) {
    if (e.type === 'connect' || e.type === 'disconnect') connections.set(e.connection as string, [...(connections.get(e.connection as string) ?? []), e.type]);
    if (e.type === 'channel_occupied' || e.type === 'channel_vacated') channels.set(e.channel as string, [...(channels.get(e.channel as string) ?? []), e.type]);
  }
  for (const id of new Set([...connections.keys(), ...truth.connections])) {
    out.push(...alternation(`connection ${id}`, connections.get(id) ?? [], 'connect', 'disconnect', truth.connections.has(id)));
  }
  for (const channel of new Set([...channels.keys(), ...truth.channels.keys()])) {
    out.push(...alternation(`channel ${channel}`, channels.get(channel) ?? [], 'channel_occupied', 'channel_vacated', (truth.channels.get(channel)?.length ?? 0) > 0));
  }
  const members = new Map<string, string[]>();
  for (const e of pusher) {
    if (e.name !== 'member_added' && e.name !== 'member_removed') continue;
    const key = `${e.channel} ${e.user_id}`;
    members.set(key, [...(members.get(key) ?? []), e.name]);
  }
  for (const channel of PRESENCE) {
    for (const member of MEMBERS) out.push(...alternation(`member ${member} of ${channel}`, members.get(`${channel} ${member}`) ?? [], 'member_added', 'member_removed', truth.members.get(channel)!.has(member)));
  }
  return out;
}

/** Checks that `events` alternate on, off, on, … and end on when `live`. */
function alternation(who: string, events: string[], on: string, off: string, live: boolean): string[] {
  for (const [i, e] of events.entries()) {
    if (e !== (i % 2 === 0 ? on : off)) return [`${who}: ${events.join(', ')} (expected ${on} and ${off} in turn)`];
  }
  const endsOn = events.length % 2 === 1;
  return endsOn === live ? [] : [`${who}: ${events.join(', ') || 'no events'}, but is ${live ? 'live' : 'gone'}`];
}

/**
 * Collects a Pusher app's webhook events. A batch sent again (its sender died, its lease ran
 * out: at least once) starts with the events of the batch before it: those are dropped here.
 */
async function startPusherReceiver(): Promise<{ url: string; events(): PusherEvent[]; close(): Promise<void> }> {
  const batches: PusherEvent[][] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const events = (JSON.parse(body) as { events: PusherEvent[] }).events;
      const last = batches.at(-1);
      const resent = last !== undefined && last.length <= events.length && JSON.stringify(events.slice(0, last.length)) === JSON.stringify(last);
      batches.push(resent ? events.slice(last.length) : events);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/pusher`,
    events: () => batches.flat(),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
