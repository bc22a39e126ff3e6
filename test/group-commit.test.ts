/** GroupCommit on its own: what waits together commits together, in order, within its limits. */
import { describe, expect, test } from 'bun:test';
import { GroupCommit } from '../src/store/group-commit.ts';

/** A commit function that records its groups and hands out consecutive ids; `gate` holds each commit until released. */
function recorder(options: { failOn?: (items: string[]) => boolean } = {}) {
  const groups: string[][] = [];
  let next = 1;
  let release: (() => void) | null = null;
  const commit = async (items: string[]) => {
    groups.push(items);
    await new Promise<void>((resolve) => (release = resolve));
    if (options.failOn?.(items)) throw new Error('database said no');
    const ids = items.map(() => next++);
    return ids;
  };
  return { groups, commit, release: () => release?.() };
}

const overflow = () => new Error('full');

describe('GroupCommit', () => {
  test('requests that arrive during a commit go together in the next one, each getting its own ids in order', async () => {
    const r = recorder();
    const gc = new GroupCommit<string>({ commit: r.commit, maxItems: 100, maxBytes: 1 << 20, maxQueued: 1000, size: (s) => s.length });
    const first = gc.add(['a'], overflow);
    const second = gc.add(['b', 'c'], overflow);
    const third = gc.add(['d'], overflow);
    expect(r.groups).toEqual([['a']]);
    r.release();
    expect(await first).toEqual([1]);
    expect(r.groups).toEqual([['a'], ['b', 'c', 'd']]);
    r.release();
    expect(await second).toEqual([2, 3]);
    expect(await third).toEqual([4]);
  });

  test('a group stops at maxItems and maxBytes; one request larger than the limit still goes, alone', async () => {
    const groups: string[][] = [];
    const commit = async (items: string[]) => (groups.push(items), items.map((_, i) => i));
    const gc = new GroupCommit<string>({ commit, maxItems: 3, maxBytes: 10, maxQueued: 1000, size: (s) => s.length });
    const all = ['x', '1 2', '3 4', '123456789012', 'y 5'].map((request) => gc.add(request.split(' '), overflow));
    await Promise.all(all);
    // 'x' went at once; then 3 items at most, 10 bytes at most, the oversized request alone.
    expect(groups).toEqual([['x'], ['1', '2'], ['3', '4'], ['123456789012'], ['y', '5']]);
  });

  test('a failed commit rejects every request of its group and no other', async () => {
    const r = recorder({ failOn: (items) => items.includes('bad') });
    const gc = new GroupCommit<string>({ commit: r.commit, maxItems: 100, maxBytes: 1 << 20, maxQueued: 1000, size: (s) => s.length });
    const first = gc.add(['ok-1'], overflow);
    const doomed = [gc.add(['bad'], overflow), gc.add(['with-bad'], overflow)];
    r.release();
    await first;
    const after = gc.add(['ok-2'], overflow);
    r.release();
    const outcomes = await Promise.allSettled(doomed);
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'committed'))).toEqual(['database said no', 'database said no']);
    r.release();
    expect(await after).toHaveLength(1);
  });

  test('past maxQueued waiting items, add() is refused at once rather than queued', async () => {
    const r = recorder();
    const gc = new GroupCommit<string>({ commit: r.commit, maxItems: 100, maxBytes: 1 << 20, maxQueued: 2, size: (s) => s.length });
    const inFlight = gc.add(['a'], overflow);
    const waiting = gc.add(['b', 'c'], overflow);
    await expect(gc.add(['d'], overflow)).rejects.toThrow('full');
    r.release();
    await inFlight;
    r.release();
    await waiting;
  });

  test('with overlapAfterMs, a group that has waited that long goes behind the one in flight, up to maxInFlight', async () => {
    const calls: { items: string[]; release: () => void }[] = [];
    let next = 1;
    let called: (() => void) | null = null;
    const commit = (items: string[]) =>
      new Promise<number[]>((resolve) => {
        // Ids are handed out in call order, as the store's one pipelined connection does.
        const ids = items.map(() => next++);
        calls.push({ items, release: () => resolve(ids) });
        called?.();
      });
    const nextCall = () => new Promise<void>((resolve) => (called = resolve));
    const gc = new GroupCommit<string>({ commit, maxItems: 100, maxBytes: 1 << 20, maxQueued: 1000, size: (s) => s.length, maxInFlight: 2, overlapAfterMs: 30 });
    const started = performance.now();
    const first = gc.add(['a'], overflow);
    const secondCall = nextCall();
    const second = gc.add(['b'], overflow);
    const third = gc.add(['c'], overflow);
    expect(calls.map((c) => c.items)).toEqual([['a']]);
    await secondCall;
    // It waited for the first group, then went with everything that had come meanwhile.
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c']]);
    const fourth = gc.add(['d'], overflow);
    // Two in flight: the fourth waits for a free place, however long it has waited.
    const thirdCall = nextCall();
    calls[1]!.release();
    expect(await second).toEqual([2]);
    expect(await third).toEqual([3]);
    await thirdCall;
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c'], ['d']]);
    calls[0]!.release();
    calls[2]!.release();
    expect(await first).toEqual([1]);
    expect(await fourth).toEqual([4]);
  });
});
