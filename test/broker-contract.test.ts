/**
 * The broker's contract (Store: publish, feed, history, cursors, retention, and
 * mesh_publish() in SQL), run over both implementations: embedded PGlite and a
 * real Postgres server. Presence and the webhook queues have suites of their own.
 */
import { describe, expect, test } from 'bun:test';
import type { Message } from '../src/core/message.ts';
import { NOTIFY_CHANNEL } from '../src/store/statements.ts';
import type { Store } from '../src/store/store.ts';
import { MeshError } from '../src/core/errors.ts';
import { MAX_MESSAGE, STORE_IMPLEMENTATIONS, startedSubject } from './harness/stores.ts';

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

describe.each(STORE_IMPLEMENTATIONS)('the broker (Store) on %s', (_name, make) => {
  const startedWithApp = (retentionMs?: number) => startedSubject(make, retentionMs === undefined ? undefined : { retentionMs });
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

  test('history and cursor reads made together share statements, and each gets its own answer', async () => {
    const subject = await startedWithApp();
    const { store } = subject;
    // 40 channels holding 0 to 3 messages each, 40 users with a cursor on every other one.
    const channels = Array.from({ length: 40 }, (_, i) => `h${i}`);
    const ids = await store.publish(channels.flatMap((channel, i) => Array.from({ length: i % 4 }, (_, k) => ({ channel, data: `${channel}-${k}`, sender: null }))));
    channels.forEach((channel, i) => i % 2 === 0 && store.advanceCursor(`u${i}`, `user:u${i}`, 100 + i));
    await store.flushCursors();
    const reads = channels.map((channel, i) => ({ channel, after: i % 3 === 0 ? ids[0]! : 0, limit: 1 + (i % 3) }));
    const before = subject.statements();
    const [pages, cursors] = await Promise.all([
      Promise.all(reads.map((r) => store.history(r.channel, r.after, r.limit))),
      Promise.all(channels.map((_, i) => store.cursor(`u${i}`, `user:u${i}`))),
    ]);
    // A statement or two per kind (the first of each goes alone), not one per read.
    expect(subject.statements() - before).toBeLessThanOrEqual(6);
    for (const [i, r] of reads.entries()) {
      expect(pages[i]!.map((m) => m.data)).toEqual((await store.history(r.channel, r.after, r.limit)).map((m) => m.data));
      expect(pages[i]!.every((m) => m.channel === r.channel && m.id > r.after)).toBe(true);
      // ids[0] is h1's first message, and h1 is read from 0: every channel has all its i % 4 messages after its `after`.
      expect(pages[i]!.length).toBe(Math.min(r.limit, i % 4));
    }
    expect(cursors).toEqual(channels.map((_, i) => (i % 2 === 0 ? 100 + i : null)));
  });

  test('a read the database refuses fails alone: the reads made with it are answered', async () => {
    const { store } = await startedWithApp();
    await store.publish([{ channel: 'fine', data: 'kept', sender: null }]);
    const reads = [store.history('fine', 0, 10), store.history('bad\u0000channel', 0, 10), store.history('fine', 0, 10)];
    const settled = await Promise.allSettled(reads);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(((settled[0] as PromiseFulfilledResult<Message[]>).value).map((m) => m.data)).toEqual(['kept']);
    expect(((settled[1] as PromiseRejectedResult).reason as MeshError).code).toBe('ERR_UNAVAILABLE');
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

  test('how far retention went is read once for many resumes asking together, and never from before the asking', async () => {
    const subject = await startedWithApp(0);
    const { store } = subject;
    await store.publish(Array.from({ length: 3 }, () => ({ channel: 'old', data: 'x', sender: null })));
    const before = subject.statements();
    const first = await Promise.all(Array.from({ length: 50 }, () => store.expiredUpTo()));
    // The first read goes alone at once, the rest wait for it and share the next (a background statement may land between).
    expect(subject.statements() - before).toBeLessThanOrEqual(3);
    expect(new Set(first).size).toBe(1);
    expect(await store.expire()).toBe(3);
    // Asked after the expiry: the answer includes it, though a read was just made.
    const after = await Promise.all(Array.from({ length: 5 }, () => store.expiredUpTo()));
    expect(after.every((upTo) => upTo > first[0]!)).toBe(true);
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

  test('ping resolves while the database is up', async () => {
    const store = await started();
    await store.ping();
  });
});
