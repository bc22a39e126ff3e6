/**
 * The ordered feed's rules, driven directly: batches arriving out of order,
 * holes filled from the table, ranges without bodies, rows expired by retention.
 * The "table" is an array standing in for mesh_message; the cluster tests run
 * the same feed over real NOTIFY.
 */
import { describe, expect, test } from 'bun:test';
import { Message } from '../src/core/message.ts';
import { Feed } from '../src/store/feed.ts';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BIN, ROOT } from './harness/process.ts';

function setup(tableIds: number[], page = 1000) {
  const table = tableIds.map((id) => new Message(id, 'c', `m${id}`, null));
  const reads: [number, number][] = [];
  const feed = new Feed(
    async (after, upTo) => {
      reads.push([after, upTo]);
      return table.filter((m) => m.id > after && m.id <= upTo).slice(0, page);
    },
    (err) => {
      throw err;
    },
  );
  const got: number[] = [];
  let wake: () => void = () => {};
  feed.onMessages((batch) => {
    got.push(...batch.map((m) => m.id));
    wake();
  });
  const until = (count: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`feed released ${got.length} of ${count}`)), 2000);
      wake = () => {
        if (got.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      };
      wake();
    });
  const batch = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => table.find((m) => m.id === from + i)!);
  return { feed, got, reads, until, batch };
}

describe('Feed', () => {
  test('contiguous batches are released at once, in order, without reading the table', () => {
    const { feed, got, reads, batch } = setup([1, 2, 3, 4]);
    feed.offer(1, 2, batch(1, 2), false);
    feed.offer(3, 4, batch(3, 4), false);
    expect(got).toEqual([1, 2, 3, 4]);
    expect(reads).toEqual([]);
  });

  test('a batch that overtook an earlier one waits for it; duplicates are dropped', async () => {
    const { feed, got, batch, until } = setup([1, 2, 3, 4, 5]);
    feed.offer(3, 5, batch(3, 5), true); // our own commit, ahead of another instance's NOTIFY
    expect(got).toEqual([]);
    feed.offer(1, 2, batch(1, 2), false);
    await until(5);
    feed.offer(3, 5, batch(3, 5), false); // its NOTIFY comes back later
    expect(got).toEqual([1, 2, 3, 4, 5]);
  });

  test('a missed notification is read from the table', async () => {
    const { feed, got, reads, batch, until } = setup([1, 2, 3, 4, 5, 6]);
    feed.offer(1, 2, batch(1, 2), false);
    feed.offer(5, 6, batch(5, 6), false); // 3-4 never announced
    await until(6);
    expect(got).toEqual([1, 2, 3, 4, 5, 6]);
    expect(reads[0]).toEqual([2, 6]);
  });

  test('a range without bodies is read, in pages', async () => {
    const { feed, got, until } = setup(Array.from({ length: 25 }, (_, i) => i + 1), 10);
    feed.offer(1, 25, null, false);
    await until(25);
    expect(got).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  test('rows deleted by retention are skipped, not waited for', async () => {
    const { feed, got, until } = setup([5, 6]);
    feed.catchUp(6);
    await until(2);
    expect(got).toEqual([5, 6]);
    expect(feed.lastId).toBe(6);
  });

  test('catching up with nothing to read settles, and a later repair still runs', async () => {
    const { feed, got, batch, until } = setup([1, 2, 3]);
    await feed.catchUp(0);
    feed.offer(2, 3, batch(2, 3), false);
    await until(3);
    expect(got).toEqual([1, 2, 3]);
  });

  test.each(['node', 'deno'] as const)('on %s, a feed 130,000 batches behind folds them into one range and still releases every message in order', (runtime) => {
    const fixture = join(ROOT, 'test', 'fixtures', 'feed-far-behind.ts');
    const [cmd, ...args] = runtime === 'node' ? ['node', '--import', 'tsx', fixture] : [join(BIN, 'deno'), 'run', '-A', fixture];
    const run = spawnSync(cmd!, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(`${run.status} ${run.stdout.trim()}`).toBe('0 released 130000 in order');
  });
});
