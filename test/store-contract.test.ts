/** The Store contract, run over both implementations: embedded PGlite and a real Postgres server. */
import { afterEach, describe, expect, test } from 'bun:test';
import type { Message } from '../src/core/message.ts';
import { openPglite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import type { Store } from '../src/store/store.ts';
import { freshDatabase } from './harness/postgres.ts';

const HOUR = 3_600_000;
const implementations: [string, (retentionMs?: number) => Promise<SqlStore>][] = [
  ['pglite', async (retentionMs = HOUR) => new SqlStore(await openPglite('memory://'), { retentionMs })],
  ['postgres', async (retentionMs = HOUR) => new SqlStore(await openPostgres(await freshDatabase()), { retentionMs })],
];

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
});

describe.each(implementations)('Store on %s', (_name, make) => {
  async function started(retentionMs?: number): Promise<SqlStore> {
    const store = await make(retentionMs);
    open.push(store);
    await store.start();
    return store;
  }

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

  test('ping resolves while the database is up', async () => {
    const store = await started();
    await store.ping();
  });
});
