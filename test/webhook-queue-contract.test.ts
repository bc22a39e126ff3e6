/**
 * The webhook queue's contract (WebhookQueue, and the bound its writers check),
 * run over both implementations: embedded PGlite and a real Postgres server.
 * Oldest first, one batch in flight per target, leases that name their holder,
 * backoff and expiry, and a backlog bound enforced by the statement that writes.
 */
import { describe, expect, test } from 'bun:test';
import { SqlCluster } from '../src/store/sql-cluster.ts';
import { SqlWebhookQueue } from '../src/store/sql-webhook-queue.ts';
import type { WebhookTargets } from '../src/store/webhooks.ts';
import { STORE_IMPLEMENTATIONS, startedSubject } from './harness/stores.ts';
import { pollUntil } from './harness/waiter.ts';

const POLICY = { firstDelayMs: 1000, maxDelayMs: 60_000, expireMs: 3_600_000 };

/** Targets with one bound each, recording what each write reports. */
function targets(bounds: Record<string, number>) {
  const wrote: [string, number, number][] = [];
  const hooks: WebhookTargets = { bounds: () => bounds, wrote: (target, produced, written) => wrote.push([target, produced, written]) };
  return { hooks, wrote };
}

describe.each(STORE_IMPLEMENTATIONS)('webhook queues on %s', (_name, make) => {
  test('oldest first, one batch in flight per target; another target is not held back by it', async () => {
    const { store, app } = await startedSubject(make);
    for (let n = 1; n <= 5; n++) await store.publish([{ channel: 'c', data: 'x', sender: null, hook: { target: 'a', event: { n } } }]);
    await store.publish([{ channel: 'c', data: 'x', sender: null, hook: { target: 'b', event: { n: 1 } } }]);
    const a = new SqlWebhookQueue(app, 'a');
    expect(await a.state()).toMatchObject({ pending: 5, inFlight: 0, failing: 0, lastError: null, nextRetryAt: null });
    const first = await a.claim(2, 60_000);
    expect(first.events.map((e) => e.event)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(await a.state()).toMatchObject({ pending: 5, inFlight: 2 });
    // In flight: nobody gets the next batch of that target meanwhile.
    expect((await a.claim(2, 60_000)).events).toEqual([]);
    expect((await new SqlWebhookQueue(app, 'b').claim(2, 60_000)).events.map((e) => e.event)).toEqual([{ n: 1 }]);
    await a.delivered(first.events.map((e) => e.row), first.lease);
    expect((await a.claim(10, 60_000)).events.map((e) => e.event)).toEqual([{ n: 3 }, { n: 4 }, { n: 5 }]);
  });

  test('a lease names its holder: a sender whose lease ran out can neither deliver nor release the batch another claimed since', async () => {
    const { store, app } = await startedSubject(make);
    await store.publish([{ channel: 'c', data: 'x', sender: null, hook: { target: 'lease-test', event: { n: 1 } } }]);
    const queue = new SqlWebhookQueue(app, 'lease-test');
    const slow = await queue.claim(10, 50);
    expect(slow.events.map((e) => e.event)).toEqual([{ n: 1 }]);
    const rows = slow.events.map((e) => e.row);
    // Its lease runs out (its POST hangs): the batch is claimed again, by another sender.
    let again = slow;
    await pollUntil(async () => (again = await queue.claim(10, 60_000)).events.length === 1, 5000, 'the batch claimable again');
    expect(again.lease).not.toBe(slow.lease);
    // The slow sender's answer comes late: it changes nothing.
    await queue.delivered(rows, slow.lease);
    expect(await queue.retry(rows, slow.lease, 'late', POLICY)).toBe(0);
    expect(await queue.backlog()).toEqual({ pending: 1, failing: 0 });
    // Still held by the second claim: nobody else gets it meanwhile, and its holder delivers it.
    expect((await queue.claim(10, 60_000)).events).toEqual([]);
    await queue.delivered(rows, again.lease);
    expect(await queue.backlog()).toEqual({ pending: 0, failing: 0 });
  });

  test('a failed batch is due again later, counted failing; one older than the expiry is given up', async () => {
    const { store, app } = await startedSubject(make);
    await store.publish([{ channel: 'c', data: 'x', sender: null, hook: { target: 't', event: { n: 1 } } }]);
    const queue = new SqlWebhookQueue(app, 't');
    const claimed = await queue.claim(10, 60_000);
    expect(await queue.retry(claimed.events.map((e) => e.row), claimed.lease, 'HTTP 500', POLICY)).toBe(0);
    expect(await queue.backlog()).toEqual({ pending: 1, failing: 1 });
    // What an operator sees: the first failing event's error and when it is tried again.
    const state = await queue.state();
    expect(state).toMatchObject({ pending: 1, failing: 1, inFlight: 0, lastError: 'HTTP 500' });
    expect(Date.parse(state.nextRetryAt!)).toBeGreaterThan(Date.now() - 5000);
    expect(state.oldestAt).not.toBeNull();
    // Not due for about a second: a claim now gets nothing.
    expect((await queue.claim(10, 60_000)).events).toEqual([]);
    let due = await queue.claim(10, 60_000);
    await pollUntil(async () => (due = await queue.claim(10, 60_000)).events.length === 1, 5000, 'due again');
    expect(due.events[0]!.attempts).toBe(1);
    expect(await queue.retry(due.events.map((e) => e.row), due.lease, 'HTTP 500', { ...POLICY, expireMs: 0 })).toBe(1);
    expect(await queue.backlog()).toEqual({ pending: 0, failing: 0 });
  });

  test('channel_occupied once when a batch fills an empty channel, channel_vacated only when a batch takes its last subscribers, however many at once', async () => {
    const { app } = await startedSubject(make);
    const { hooks } = targets({ '': 1000 });
    const cluster = new SqlCluster(app, { instance: 'i1', ttlMs: 15_000, local: () => [], onError: () => {}, hooks });
    await cluster.start();
    const channelEvents = async () =>
      (await app.query("select event::text as e from mesh_webhook where target = '' order by id"))
        .map((r) => JSON.parse(r.e as string) as { type: string; channel?: string })
        .filter((e) => e.type.startsWith('channel_'))
        .map((e) => `${e.type} ${e.channel}`);
    try {
      for (const n of [1, 2, 3, 4]) cluster.connected(`i1.c${n}`, `u${n}`, 'websocket', Date.now());
      // Two subscribers in one batch: occupied once.
      cluster.subscribed('i1.c1', 'u1', ['hall']);
      cluster.subscribed('i1.c2', 'u2', ['hall']);
      await cluster.flush();
      cluster.subscribed('i1.c3', 'u3', ['hall']);
      cluster.subscribed('i1.c4', 'u4', ['hall']);
      await cluster.flush();
      expect(await channelEvents()).toEqual(['channel_occupied hall']);
      // Three of four leave in one batch: still occupied.
      for (const n of [1, 2, 3]) cluster.unsubscribed(`i1.c${n}`, `u${n}`, ['hall']);
      await cluster.flush();
      expect(await channelEvents()).toEqual(['channel_occupied hall']);
      // The last one: vacated.
      cluster.disconnected('i1.c4', 'client_closed');
      await cluster.flush();
      expect(await channelEvents()).toEqual(['channel_occupied hall', 'channel_vacated hall']);
      // Filled and emptied again, two at a time.
      cluster.subscribed('i1.c1', 'u1', ['hall']);
      cluster.subscribed('i1.c2', 'u2', ['hall']);
      await cluster.flush();
      cluster.unsubscribed('i1.c1', 'u1', ['hall']);
      cluster.unsubscribed('i1.c2', 'u2', ['hall']);
      await cluster.flush();
      expect(await channelEvents()).toEqual(['channel_occupied hall', 'channel_vacated hall', 'channel_occupied hall', 'channel_vacated hall']);
    } finally {
      await cluster.close();
    }
  });

  test("presence's events: a full backlog takes none of a write's events (reported dropped), is never exceeded, and takes them again the moment it drains", async () => {
    const { app } = await startedSubject(make);
    const { hooks, wrote } = targets({ '': 4 });
    const cluster = new SqlCluster(app, { instance: 'i1', ttlMs: 15_000, local: () => [], onError: () => {}, hooks });
    await cluster.start();
    try {
      // Each connect of a new user is two events: connect and user_online.
      for (const uid of ['u1', 'u2', 'u3', 'u4']) {
        cluster.connected(`i1.${uid}`, uid, 'websocket', Date.now());
        await cluster.flush();
      }
      const queue = new SqlWebhookQueue(app, '');
      expect((await queue.backlog()).pending).toBe(4);
      expect(wrote).toEqual([
        ['', 2, 2],
        ['', 2, 2],
        ['', 2, 0],
        ['', 2, 0],
      ]);
      const batch = await queue.claim(100, 60_000);
      expect(batch.events.map((e) => `${e.event.type} ${e.event.uid}`)).toEqual(['connect u1', 'user_online u1', 'connect u2', 'user_online u2']);
      await queue.delivered(batch.events.map((e) => e.row), batch.lease);
      cluster.connected('i1.u5', 'u5', 'websocket', Date.now());
      await cluster.flush();
      expect(wrote.at(-1)).toEqual(['', 2, 2]);
      expect((await queue.backlog()).pending).toBe(2);
    } finally {
      await cluster.close();
    }
  });

  test("a client event's hook is checked against its target's bound in the publish itself: the message is stored either way", async () => {
    const { hooks, wrote } = targets({ 'pusher:1': 2 });
    const { store } = await startedSubject(make, { hooks });
    for (let n = 1; n <= 3; n++) await store.publish([{ channel: 'c', data: `m${n}`, sender: null, hook: { target: 'pusher:1', event: { n } } }]);
    expect(wrote).toEqual([
      ['pusher:1', 1, 1],
      ['pusher:1', 1, 1],
      ['pusher:1', 1, 0],
    ]);
    expect((await store.history('c', 0, 10)).map((m) => m.data)).toEqual(['m1', 'm2', 'm3']);
  });
});
