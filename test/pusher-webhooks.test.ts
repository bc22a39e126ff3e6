/**
 * Webhooks in Pusher's format, checked by the official `pusher` library's own
 * webhook verifier (X-Pusher-Key, X-Pusher-Signature), from a two-instance
 * cluster: channel_occupied/vacated and member_added/removed once for the
 * cluster, client_event with its socket and user, a SIGKILLed instance's
 * members reported by the survivor, and nothing lost while the app's endpoint
 * answers 500. An app without a webhook URL gets none, and pgmesh's own
 * webhooks never carry an app's events.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createServer } from 'node:http';
import { startCluster, type Instance } from './harness/cluster.ts';
import { startProcess } from './harness/process.ts';
import { pusherClient, pusherServer, type Member, type PusherAppKeys } from './harness/pusher.ts';
import { createWaiter } from './harness/waiter.ts';
import { startWebhookReceiver } from './harness/webhook-receiver.ts';

const APP = { id: '3001', key: 'hooked-key', secret: 'hooked-secret-0123456789' };
const QUIET = { id: '3002', key: 'quiet-key', secret: 'quiet-secret-0123456789' };

interface PusherHook {
  name: string;
  channel: string;
  [field: string]: unknown;
}

/** The app's webhook endpoint: every POST verified with the server library; answers 500 while told to. */
async function startPusherReceiver() {
  const sdk = pusherServer(1, APP);
  const waiter = createWaiter();
  const posts: { valid: boolean; status: number; timeMs: number; events: PusherHook[] }[] = [];
  let failing = 0;
  const server = createServer((req, res) => {
    let rawBody = '';
    req.on('data', (d) => (rawBody += d));
    req.on('end', () => {
      const hook = sdk.webhook({ headers: req.headers as Record<string, string>, rawBody });
      const valid = hook.isValid();
      const status = failing > 0 ? (failing--, 500) : 200;
      posts.push({ valid, status, timeMs: valid ? hook.getTime().getTime() : 0, events: valid ? (hook.getEvents() as unknown as PusherHook[]) : [] });
      res.writeHead(status).end();
      waiter.wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/pusher/webhook`,
    posts,
    /** The events of the answered (200) POSTs, in order. */
    delivered: () => posts.filter((p) => p.status === 200).flatMap((p) => p.events),
    failNext: (n: number) => void (failing = n),
    until: (done: () => boolean, timeoutMs = 15_000) => waiter.until(done, timeoutMs, () => `webhooks so far: ${JSON.stringify(posts.slice(-4))}`),
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const receiver = await startPusherReceiver();
const meshReceiver = await startWebhookReceiver('mesh-webhook-secret-0123');
const pusherApps = `${APP.id}:${APP.key}:${APP.secret},${QUIET.id}:${QUIET.key}:${QUIET.secret}`;
const env = {
  PUSHER_APPS: pusherApps,
  PUSHER_WEBHOOKS: `${APP.id}=${receiver.url}`,
  MESH_WEBHOOK_URL: meshReceiver.url,
  MESH_WEBHOOK_SECRET: 'mesh-webhook-secret-0123',
  MESH_INSTANCE_TTL: '3s',
  // An instance killed while it holds a batch holds that queue for this plus a second.
  MESH_WEBHOOK_TIMEOUT: '2s',
};
const { databaseUrl, instances } = await startCluster(['bun', 'node'], { env });
const [A, B] = instances as [Instance, Instance];
const open: { close(): void }[] = [];
afterAll(async () => {
  for (const c of open) c.close();
  await receiver.close();
  await meshReceiver.close();
});
async function opened(instance: { port: number }, member?: Member, app: PusherAppKeys = APP) {
  const c = await pusherClient(instance.port, app, { member });
  open.push(c);
  return c;
}
const named = (name: string, channel: string) => receiver.delivered().filter((e) => e.name === name && e.channel === channel);

describe('Pusher webhooks', () => {
  test('channel_occupied, member_added, client_event, member_removed, channel_vacated: once for the cluster, in order, signed as Pusher signs them', async () => {
    const alice = await opened(A, { user_id: 'w-alice' });
    expect(await alice.subscribe('presence-hooks')).toEqual({ ok: true });
    const aliceAgain = await opened(B, { user_id: 'w-alice' });
    expect(await aliceAgain.subscribe('presence-hooks')).toEqual({ ok: true });
    const bob = await opened(B, { user_id: 'w-bob' });
    expect(await bob.subscribe('presence-hooks')).toEqual({ ok: true });
    await receiver.until(() => named('member_added', 'presence-hooks').length >= 2);

    alice.pusher.channel('presence-hooks')!.trigger('client-wave', { hi: 1 });
    await receiver.until(() => named('client_event', 'presence-hooks').length >= 1);
    expect(named('client_event', 'presence-hooks')).toEqual([
      { name: 'client_event', channel: 'presence-hooks', event: 'client-wave', data: '{"hi":1}', socket_id: alice.socketId(), user_id: 'w-alice' },
    ]);

    // Alice's second socket leaving is not her leaving; her last one is.
    for (const c of [aliceAgain, bob]) c.pusher.unsubscribe('presence-hooks');
    await receiver.until(() => named('member_removed', 'presence-hooks').length >= 1);
    alice.pusher.unsubscribe('presence-hooks');
    await receiver.until(() => named('channel_vacated', 'presence-hooks').length >= 1);
    const story = receiver.delivered().filter((e) => e.channel === 'presence-hooks').map((e) => [e.name, e.name === 'client_event' ? e.event : e.user_id]);
    expect(story).toEqual([
      ['channel_occupied', undefined],
      ['member_added', 'w-alice'],
      ['member_added', 'w-bob'],
      ['client_event', 'client-wave'],
      ['member_removed', 'w-bob'],
      ['member_removed', 'w-alice'],
      ['channel_vacated', undefined],
    ]);
    expect(receiver.posts.every((p) => p.valid)).toBe(true);
    expect(receiver.posts.every((p) => Math.abs(p.timeMs - Date.now()) < 60_000)).toBe(true);
  }, 30_000);

  test('client events on a private channel carry no user_id; a public channel is occupied and vacated', async () => {
    const one = await opened(A);
    const two = await opened(B);
    for (const c of [one, two]) expect(await c.subscribe('private-hooks')).toEqual({ ok: true });
    one.pusher.channel('private-hooks')!.trigger('client-typing', 'yes');
    await receiver.until(() => named('client_event', 'private-hooks').length >= 1);
    expect(named('client_event', 'private-hooks')).toEqual([{ name: 'client_event', channel: 'private-hooks', event: 'client-typing', data: 'yes', socket_id: one.socketId() }]);
    // A string Postgres cannot hold (a NUL character) is refused at the edge: no member and no webhook gets it; the next event goes.
    one.pusher.channel('private-hooks')!.trigger('client-nul', 'a\u0000b');
    one.pusher.channel('private-hooks')!.trigger('client-after', 'fine');
    await two.until(() => two.events('private-hooks').some((e) => e.event === 'client-after'));
    expect(two.events('private-hooks').map((e) => e.event)).not.toContain('client-nul');
    await receiver.until(() => named('client_event', 'private-hooks').length >= 2);
    expect(named('client_event', 'private-hooks').map((e) => e.event)).toEqual(['client-typing', 'client-after']);

    const reader = await opened(B);
    expect(await reader.subscribe('news-hooks')).toEqual({ ok: true });
    await receiver.until(() => named('channel_occupied', 'news-hooks').length === 1);
    reader.close();
    await receiver.until(() => named('channel_vacated', 'news-hooks').length === 1);
    expect(named('member_added', 'news-hooks')).toEqual([]);
  }, 30_000);

  test('an instance SIGKILLed: the survivor reports its members removed and the channel vacated, within the TTL', async () => {
    const doomed = await startProcess('node', { DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: 'WK', MESH_HEARTBEAT: '2s', ...env });
    const carol = await opened(doomed, { user_id: 'w-carol' });
    expect(await carol.subscribe('presence-doomed')).toEqual({ ok: true });
    await receiver.until(() => named('member_added', 'presence-doomed').length === 1);
    const killedAt = Date.now();
    await doomed.stop('SIGKILL');
    await receiver.until(() => named('channel_vacated', 'presence-doomed').length === 1, 20_000);
    // The TTL, and the lease of a batch the killed instance may have held, and some slack for this machine.
    expect(Date.now() - killedAt).toBeLessThan(3000 + 3000 + 3000);
    expect(named('member_removed', 'presence-doomed')).toEqual([{ name: 'member_removed', channel: 'presence-doomed', user_id: 'w-carol' }]);
  }, 40_000);

  test('an endpoint answering 500 gets the same events again until it takes them: nothing lost, nothing reordered', async () => {
    receiver.failNext(2);
    const failedBefore = receiver.posts.filter((p) => p.status === 500).length;
    const dana = await opened(A, { user_id: 'w-dana' });
    expect(await dana.subscribe('presence-retry')).toEqual({ ok: true });
    await receiver.until(() => named('member_added', 'presence-retry').length >= 1, 20_000);
    expect(receiver.posts.filter((p) => p.status === 500).length).toBe(failedBefore + 2);
    const refused = receiver.posts.filter((p) => p.status === 500).slice(-2);
    for (const p of refused) expect(p.events.map((e) => e.name)).toEqual(['channel_occupied', 'member_added']);
    expect(receiver.delivered().filter((e) => e.channel === 'presence-retry')).toEqual([
      { name: 'channel_occupied', channel: 'presence-retry' },
      { name: 'member_added', channel: 'presence-retry', user_id: 'w-dana' },
    ]);
  }, 40_000);

  test('PUSHER_WEBHOOK_EVENTS picks which events an app gets; PUSHER_CLIENT_EVENTS=off refuses its client events (4301), so none is sent or hooked', async () => {
    const picky = await startPusherReceiver();
    const alone = await startProcess('bun', { PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}`, PUSHER_WEBHOOKS: `${APP.id}=${picky.url}`, PUSHER_WEBHOOK_EVENTS: `${APP.id}=member_added+member_removed+client_event`, PUSHER_CLIENT_EVENTS: `${APP.id}=off` });
    try {
      const one = await opened(alone, { user_id: 'p-one' });
      const errors: { data?: { code?: number; message?: string } }[] = [];
      one.pusher.connection.bind('error', (e: (typeof errors)[number]) => errors.push(e));
      expect(await one.subscribe('presence-picky')).toEqual({ ok: true });
      one.pusher.channel('presence-picky')!.trigger('client-wave', { hi: 1 });
      await one.until(() => errors.some((e) => e.data?.code === 4301));
      expect(errors.find((e) => e.data?.code === 4301)!.data!.message).toBe('client events are disabled for this app');
      one.pusher.unsubscribe('presence-picky');
      await picky.until(() => picky.delivered().some((e) => e.name === 'member_removed'));
      expect(picky.delivered().map((e) => [e.name, e.user_id])).toEqual([
        ['member_added', 'p-one'],
        ['member_removed', 'p-one'],
      ]);
    } finally {
      await alone.stop();
      await picky.close();
    }
  }, 30_000);

  test("an app without a webhook URL gets none; pgmesh's own webhooks carry no app's events", async () => {
    const quiet = await opened(A, { user_id: 'w-quiet' }, QUIET);
    expect(await quiet.subscribe('presence-quiet')).toEqual({ ok: true });
    // A later event of the hooked app: once it is in, the quiet app's would have been too.
    const marker = await opened(A);
    expect(await marker.subscribe('news-marker')).toEqual({ ok: true });
    await receiver.until(() => named('channel_occupied', 'news-marker').length === 1);
    expect(receiver.delivered().filter((e) => e.channel === 'presence-quiet')).toEqual([]);
    // pgmesh's own queue: a pgmesh user's connect arrives, and nothing of any app's before it.
    await A.login('mesh-user-1');
    await meshReceiver.until(() => meshReceiver.delivered().some((e) => e.type === 'connect' && e.uid === 'mesh-user-1'));
    expect(meshReceiver.delivered().map((e) => [e.type, e.uid])).toEqual([
      ['connect', 'mesh-user-1'],
      ['user_online', 'mesh-user-1'],
    ]);
    const stats = (await (await fetch(`${A.url}/v1/mesh/stats`)).json()) as { pusherWebhooks: Record<string, { sent: number }>; webhooks: { sent: number } };
    expect(Object.keys(stats.pusherWebhooks)).toEqual([APP.id]);
    expect(stats.webhooks).toBeDefined();
  }, 30_000);
});
