/**
 * Group commit: publishes that arrive while a commit is in flight wait and go
 * together in the next one. One statement and one NOTIFY carry many messages,
 * which is where durable throughput comes from (a notifying commit takes a
 * server-wide lock); an idle publisher pays no added latency.
 *
 * When `commit` keeps its calls in order (the store sends them down one pipelined
 * connection), a group that has waited `overlapAfterMs` for the one in flight goes
 * too, right behind it. Near the database that never happens: a commit takes a
 * millisecond or two. Far from it (100 ms and more per round trip) it means a
 * publish waits about one round trip, not for the group before it as well.
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
  /** Groups committing at once (default 1); above 1, `commit` must commit its calls in the order they were made. */
  maxInFlight?: number;
  /** How long a group waits for the groups in flight before it goes anyway (when maxInFlight allows). */
  overlapAfterMs?: number;
  /**
   * Whether a failed commit failed for one request's data rather than for the database: the group is
   * then split and committed again in halves, so only the request at fault fails.
   */
  splitOn?: (err: unknown) => boolean;
}

/** Queues publish requests and commits them in groups, in order, up to maxInFlight groups at a time. */
export class GroupCommit<T> {
  readonly #options: GroupCommitOptions<T>;
  #queue: Waiting<T>[] = [];
  #queued = 0;
  #inFlight = 0;
  #lastSentAt = 0;
  #overlapTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: GroupCommitOptions<T>) {
    this.#options = options;
  }

  /** Resolves with the ids of `items` once they are committed; rejects with `overflow()` when too many wait. */
  add(items: readonly T[], overflow: () => Error): Promise<number[]> {
    if (this.#queued + items.length > this.#options.maxQueued && this.#queued > 0) return Promise.reject(overflow());
    this.#queued += items.length;
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      this.#dispatch();
    });
  }

  /** Sends the next group when nothing is in flight, or when it has waited long enough and there is room. */
  #dispatch(): void {
    const { maxInFlight = 1, overlapAfterMs = Infinity } = this.#options;
    while (this.#queue.length > 0 && this.#inFlight < maxInFlight) {
      const waited = performance.now() - this.#lastSentAt;
      if (this.#inFlight > 0 && waited < overlapAfterMs) {
        if (overlapAfterMs !== Infinity) this.#overlapTimer ??= setTimeout(this.#overlapDue, overlapAfterMs - waited);
        return;
      }
      this.#inFlight++;
      this.#lastSentAt = performance.now();
      void this.#send(this.#take());
    }
  }

  #overlapDue = (): void => {
    this.#overlapTimer = null;
    this.#dispatch();
  };

  async #send(group: Waiting<T>[]): Promise<void> {
    // The answers go out before the next group does, in the same turn.
    try {
      answer(group, await this.#options.commit(group.flatMap((w) => w.items)));
    } catch (err) {
      await this.#failed(group, err);
    }
    this.#inFlight--;
    this.#dispatch();
  }

  /** A group's commit failed: for one request's data, the group is bisected until that request stands alone; else every request fails. */
  async #failed(group: Waiting<T>[], err: unknown): Promise<void> {
    if (group.length === 1 || !this.#options.splitOn?.(err)) {
      for (const w of group) w.reject(err);
      return;
    }
    const half = Math.ceil(group.length / 2);
    for (const part of [group.slice(0, half), group.slice(half)]) {
      try {
        answer(part, await this.#options.commit(part.flatMap((w) => w.items)));
      } catch (partErr) {
        await this.#failed(part, partErr);
      }
    }
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

/** Hands each request of a committed group its ids. */
function answer<T>(group: readonly Waiting<T>[], ids: readonly number[]): void {
  let at = 0;
  for (const w of group) {
    w.resolve(ids.slice(at, at + w.items.length));
    at += w.items.length;
  }
}
