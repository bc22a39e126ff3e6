/** The Store contract, run over both implementations: embedded PGlite and a real Postgres server. */
import { afterEach, describe, expect, test } from 'bun:test';
import type { Message } from '../src/core/message.ts';
import { openPglite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { NOTIFY_CHANNEL } from '../src/store/statements.ts';
import type { Store } from '../src/store/store.ts';
import type { SqlDriver } from '../src/store/driver.ts';
import { freshDatabase } from './harness/postgres.ts';
import { SqlCluster } from '../src/store/cluster.ts';
import { MeshError } from '../src/core/errors.ts';
import { SqlWebhookQueue } from '../src/store/webhooks.ts';
import { pollUntil } from './harness/waiter.ts';

const HOUR = 3_600_000;
/** MESH_MAX_MESSAGE of the stores under test, which mesh_publish() in SQL enforces too. */
const MAX_MESSAGE = 4096;
/** Each implementation: a store, and the SQL connection an application would use on the same database. */
interface Subject {
  store: SqlStore;
  app: SqlDriver;
}
const implementations: [string, (retentionMs?: number) => Promise<Subject>][] = [
  [
    'pglite',
    async (retentionMs = HOUR) => {
      const db = await openPglite('memory://');
      return { store: new SqlStore(db, { retentionMs, maxMessage: MAX_MESSAGE }), app: db };
    },
  ],
  [
    'postgres',
    async (retentionMs = HOUR) => {
      const url = await freshDatabase();
      const app = await openPostgres(url);
      appConnections.push(app);
      return { store: new SqlStore(await openPostgres(url), { retentionMs, maxMessage: MAX_MESSAGE }), app };
    },
  ],
];
const appConnections: SqlDriver[] = [];

/** Collects what the live feed hands over, and waits for a count with a deadline. */
function feedOf(store: Store) {
  const got: Message[] = [];
  let wake: (() => void) | null = null;
  store.onMessages((batch) => {
    got.push(...batch);
    wake?.();
  });
  return {
    got,
    async until(count: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (got.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`feed has ${got.length} of ${count} messages`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => (clearTimeout(t), resolve());
        });
      }
      return got;
    },
  };
}

const open: Store[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(appConnections.splice(0).map((c) => c.close()));
});

describe.each(implementations)('Store on %s', (_name, make) => {
  async function startedWithApp(retentionMs?: number): Promise<Subject> {
    const subject = await make(retentionMs);
    open.push(subject.store);
    await subject.store.start();
    return subject;
  }
  const started = async (retentionMs?: number) => (await startedWithApp(retentionMs)).store;

  test('publish returns consecutive ids and the feed delivers each message once, in order', async () => {
    const store = await started();
    const feed = feedOf(store);
    const ids = await store.publish([
      { channel: 'a', data: 'one', sender: null },
      { channel: 'b', data: '"two"', sender: 'u1' },
    ]);
    expect(ids[1]).toBe(ids[0]! + 1);
    const got = await feed.until(2);
    expect(got.map((m) => [m.id, m.channel, m.data, m.sender])).toEqual([
      [ids[0], 'a', 'one', null],
      [ids[1], 'b', '"two"', 'u1'],
    ]);
  });

  test('concurrent publishes are group-committed with gap-free ids and fed in id order', async () => {
    const store = await started();
    const feed = feedOf(store);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.publish([{ channel: 'c', data: `m${i}`, sender: null }])));
    const ids = results.flat().sort((x, y) => x - y);
    expect(ids).toEqual(Array.from({ length: 200 }, (_, i) => ids[0]! + i));
    const got = await feed.until(200);
    expect(got.map((m) => m.id)).toEqual(ids);
    // Each publish call got the id of its own message.
    for (let i = 0; i < 200; i++) expect(got.find((m) => m.id === results[i]![0])!.data).toBe(`m${i}`);
  });

  test('publishes that arrive together share statements: far fewer NOTIFYs than publishes', async () => {
    const { store, app } = await startedWithApp();
    let notifications = 0;
    let lastAnnounced = 0;
    let wake = () => {};
    await app.listen(NOTIFY_CHANNEL, {
      onPayload: (payload) => {
        const n = JSON.parse(payload) as { to?: number };
        if (n.to === undefined) return;
        notifications++;
        lastAnnounced = Math.max(lastAnnounced, n.to);
        wake();
      },
      onListen: () => {},
      onLost: () => {},
    });
    const ids = (await Promise.all(Array.from({ length: 200 }, (_, i) => store.publish([{ channel: 'g', data: `m${i}`, sender: null }])))).flat();
    const last = Math.max(...ids);
    // One NOTIFY per committed statement: wait until they have announced every id.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`NOTIFYs announced up to ${lastAnnounced} of ${last}`)), 10_000);
      wake = () => lastAnnounced >= last && (clearTimeout(timer), resolve());
      wake();
    });
    expect(notifications).toBeLessThan(50);
  });

  test('history reads a channel after an id, in order, with a limit', async () => {
    const store = await started();
    const ids = await store.publish(['x1', 'y1', 'x2', 'x3'].map((d) => ({ channel: d[0]!, data: d, sender: null })));
    expect((await store.history('x', 0, 10)).map((m) => m.data)).toEqual(['x1', 'x2', 'x3']);
    expect((await store.history('x', ids[0]!, 10)).map((m) => m.data)).toEqual(['x2', 'x3']);
    expect((await store.history('x', 0, 2)).map((m) => m.data)).toEqual(['x1', 'x2']);
  });

  test('a batch too large for a NOTIFY payload still reaches the feed intact', async () => {
    const store = await started();
    const feed = feedOf(store);
    const big = 'é'.repeat(100_000);
    await store.publish([{ channel: 'big', data: big, sender: null }]);
    const [m] = await feed.until(1);
    expect(m!.data).toBe(big);
  });

  test('cursors: unknown is null, moves only forward, and reads back before and after a flush', async () => {
    const store = await started();
    expect(await store.cursor('u', 'user:u')).toBeNull();
    store.advanceCursor('u', 'user:u', 5);
    store.advanceCursor('u', 'user:u', 3);
    expect(await store.cursor('u', 'user:u')).toBe(5);
    await store.flushCursors();
    expect(await store.cursor('u', 'user:u')).toBe(5);
    store.advanceCursor('u', 'user:u', 4);
    await store.flushCursors();
    expect(await store.cursor('u', 'user:u')).toBe(5);
  });

  test('expire deletes messages older than the retention, and only those', async () => {
    const keeping = await started();
    await keeping.publish([{ channel: 'kept', data: 'x', sender: null }]);
    expect(await keeping.expire()).toBe(0);
    expect(await keeping.history('kept', 0, 10)).toHaveLength(1);

    const expiring = await started(0);
    await expiring.publish(Array.from({ length: 3 }, () => ({ channel: 'gone', data: 'x', sender: null })));
    expect(await expiring.expire()).toBe(3);
    expect(await expiring.history('gone', 0, 10)).toHaveLength(0);
  });

  test('mesh_publish() in a committed transaction is delivered; in a rolled-back one, nothing is', async () => {
    const { store, app } = await startedWithApp();
    const feed = feedOf(store);
    await app
      .transaction(async (tx) => {
        await tx.query("select mesh_publish('user:1', 'rolled back')");
        throw new Error('business rule failed');
      })
      .catch(() => {});
    await app.transaction(async (tx) => {
      await tx.query("select mesh_publish('user:1', 'committed')");
      await tx.query("select mesh_publish(array['room_1', 'room_2'], array['batch 1', 'batch 2'])");
    });
    const got = await feed.until(3);
    expect(got.map((m) => [m.channel, m.data, m.sender])).toEqual([
      ['user:1', 'committed', null],
      ['room_1', 'batch 1', null],
      ['room_2', 'batch 2', null],
    ]);
    expect((await store.history('user:1', 0, 10)).map((m) => m.data)).toEqual(['committed']);
  });

  test('mesh_publish() refuses a bad channel or NULL data inside the caller transaction', async () => {
    const { app } = await startedWithApp();
    await expect(app.query("select mesh_publish('has space', 'x')")).rejects.toThrow(/invalid channel name/);
    await expect(app.query("select mesh_publish('ok', null)")).rejects.toThrow(/must not be NULL/);
    await expect(app.query("select mesh_publish(array['a'], array['x', 'y'])")).rejects.toThrow(/1 channels but 2 data/);
    await expect(app.query("select mesh_publish('$cmd', 'x')")).rejects.toThrow(/invalid channel name/);
  });

  test('mesh_publish() enforces MESH_MAX_MESSAGE like the HTTP API, with a clear SQL error', async () => {
    const { app, store } = await startedWithApp();
    const feed = feedOf(store);
    await expect(app.query(`select mesh_publish('room_big', repeat('x', ${MAX_MESSAGE + 1}))`)).rejects.toThrow(
      `mesh_publish: message of ${MAX_MESSAGE + 1} bytes is larger than MESH_MAX_MESSAGE (${MAX_MESSAGE} bytes)`,
    );
    await app.query(`select mesh_publish('room_big', repeat('x', ${MAX_MESSAGE}))`);
    await feed.until(1);
    expect(feed.got[0]!.data).toHaveLength(MAX_MESSAGE);
  });

  test('a message with a webhook event: both are stored in one transaction, or neither', async () => {
    const { store, app } = await startedWithApp();
    const [id] = await store.publish([{ channel: 'private-chat', data: 'hi', sender: null, hook: { target: 'pusher:1', event: { name: 'client_event', data: 'hi' } } }]);
    expect(await app.query('select target, event::text as event from mesh_webhook')).toEqual([{ target: 'pusher:1', event: '{"data": "hi", "name": "client_event"}' }]);
    expect((await store.history('private-chat', 0, 10)).map((m) => m.id)).toEqual([id!]);
    // An event Postgres cannot store (jsonb takes no \u0000) fails the statement: the message is not stored either.
    await expect(store.publish([{ channel: 'private-chat', data: 'lost together', sender: null, hook: { target: 'pusher:1', event: { data: 'bad\u0000' } } }])).rejects.toMatchObject({ code: 'ERR_DATA_REFUSED' });
    expect((await store.history('private-chat', 0, 10)).map((m) => m.data)).toEqual(['hi']);
    expect(await app.query('select count(*)::int as n from mesh_webhook')).toEqual([{ n: 1 }]);
  });

  // The edge refuses such text (edge-input.ts); this is the second line of defence, should any get past it.
  test('a publish whose data the database refuses fails alone: the others of its group are stored and fed', async () => {
    const store = await started();
    const feed = feedOf(store);
    const good = Array.from({ length: 40 }, (_, i) => store.publish([{ channel: 'g', data: `ok${i}`, sender: null }]));
    const bad = [store.publish([{ channel: 'g', data: 'nul\u0000here', sender: null }]), store.publish([{ channel: 'g\ud800', data: 'x', sender: null }])];
    const outcomes = await Promise.allSettled([...good, ...bad]);
    expect(outcomes.slice(0, 40).every((o) => o.status === 'fulfilled')).toBe(true);
    for (const o of outcomes.slice(40)) {
      expect(o.status).toBe('rejected');
      expect(((o as PromiseRejectedResult).reason as MeshError).code).toBe('ERR_DATA_REFUSED');
    }
    const got = await feed.until(40);
    expect(got.map((m) => m.data).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `ok${i}`).sort());
    // Ids stay gap-free: the refused ones took none.
    const ids = got.map((m) => m.id);
    expect(ids).toEqual(Array.from({ length: 40 }, (_, i) => ids[0]! + i));
  });

  test("presence: a connection whose rows the database refuses is dropped; everyone else's are written, now and after", async () => {
    const { app } = await startedWithApp();
    const refused: unknown[] = [];
    const errors: unknown[] = [];
    const cluster = new SqlCluster(app, { instance: 'i1', ttlMs: 15_000, local: () => [], onError: (e) => errors.push(e), onRefused: (e) => refused.push(e) });
    await cluster.start();
    try {
      cluster.connected('i1.good', 'alice', 'websocket', Date.now());
      cluster.subscribed('i1.good', 'alice', ['room']);
      cluster.connected('i1.bad', 'mallory\u0000', 'websocket', Date.now());
      cluster.subscribed('i1.bad', 'mallory\u0000', ['room']);
      await cluster.flush();
      expect(refused.length).toBe(1);
      expect((await cluster.user('alice')).map((c) => [c.id, c.channels])).toEqual([['i1.good', ['room']]]);
      // Nothing is left to retry forever: the next change goes through on its own.
      cluster.connected('i1.next', 'bob', 'websocket', Date.now());
      await cluster.flush();
      expect((await cluster.user('bob')).map((c) => c.id)).toEqual(['i1.next']);
      expect(refused.length).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await cluster.close();
    }
  });

  test('a webhook lease names its holder: a sender whose lease ran out can neither deliver nor release the batch another claimed since', async () => {
    const { store, app } = await startedWithApp();
    await store.publish([{ channel: 'c', data: 'x', sender: null, hook: { target: 'lease-test', event: { n: 1 } } }]);
    const queue = new SqlWebhookQueue(app, 'lease-test');
    const policy = { firstDelayMs: 1000, maxDelayMs: 60_000, expireMs: 3_600_000 };
    const slow = await queue.claim(10, 50);
    expect(slow.events.map((e) => e.event)).toEqual([{ n: 1 }]);
    const rows = slow.events.map((e) => e.row);
    // Its lease runs out (its POST hangs): the batch is claimed again, by another sender.
    let again = slow;
    await pollUntil(async () => (again = await queue.claim(10, 60_000)).events.length === 1, 5000, 'the batch claimable again');
    expect(again.lease).not.toBe(slow.lease);
    // The slow sender's answer comes late: it changes nothing.
    await queue.delivered(rows, slow.lease);
    expect(await queue.retry(rows, slow.lease, 'late', policy)).toBe(0);
    expect(await queue.backlog()).toEqual({ pending: 1, failing: 0 });
    // Still held by the second claim: nobody else gets it meanwhile, and its holder delivers it.
    expect((await queue.claim(10, 60_000)).events).toEqual([]);
    await queue.delivered(rows, again.lease);
    expect(await queue.backlog()).toEqual({ pending: 0, failing: 0 });
  });

  test('ping resolves while the database is up', async () => {
    const store = await started();
    await store.ping();
  });
});
