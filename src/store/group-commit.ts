/**
 * Group commit: publishes that arrive while a commit is in flight wait and go
 * together in the next one. One statement and one NOTIFY carry many messages,
 * which is where durable throughput comes from (a notifying commit takes a
 * server-wide lock); an idle publisher pays no added latency.
 */

interface Waiting<T> {
  items: readonly T[];
  resolve: (ids: number[]) => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitOptions<T> {
  /** Commits a batch and returns one id per item, in order. */
  commit: (items: T[]) => Promise<number[]>;
  /** Most items per commit (a single larger request still goes, alone). */
  maxItems: number;
  /** Most bytes per commit, as measured by `size`. */
  maxBytes: number;
  /** Items waiting (not in flight) past which add() is refused rather than queued. */
  maxQueued: number;
  size: (item: T) => number;
}

/** Queues publish requests and commits them in groups, one group at a time. */
export class GroupCommit<T> {
  readonly #options: GroupCommitOptions<T>;
  #queue: Waiting<T>[] = [];
  #queued = 0;
  #busy = false;

  constructor(options: GroupCommitOptions<T>) {
    this.#options = options;
  }

  /** Resolves with the ids of `items` once they are committed; rejects with `overflow()` when too many wait. */
  add(items: readonly T[], overflow: () => Error): Promise<number[]> {
    if (this.#queued + items.length > this.#options.maxQueued && this.#queued > 0) return Promise.reject(overflow());
    this.#queued += items.length;
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      if (!this.#busy) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length > 0) {
      const group = this.#take();
      const items = group.flatMap((w) => w.items);
      try {
        const ids = await this.#options.commit(items);
        let at = 0;
        for (const w of group) {
          w.resolve(ids.slice(at, at + w.items.length));
          at += w.items.length;
        }
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.#busy = false;
  }

  #take(): Waiting<T>[] {
    const { maxItems, maxBytes, size } = this.#options;
    let count = 0;
    let bytes = 0;
    let n = 0;
    for (const w of this.#queue) {
      const wBytes = w.items.reduce((sum, item) => sum + size(item), 0);
      if (n > 0 && (count + w.items.length > maxItems || bytes + wBytes > maxBytes)) break;
      count += w.items.length;
      bytes += wBytes;
      n++;
    }
    const group = this.#queue.splice(0, n);
    this.#queued -= count;
    return group;
  }
}
