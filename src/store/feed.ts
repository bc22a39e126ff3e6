/**
 * The ordered live feed. Batches reach an instance from its own commits and
 * from NOTIFY (inline, or as a bare id range when the batch did not fit the
 * payload limit). Ids are gap-free and commit in order, so any hole means a
 * batch was missed or is still on its way: the feed holds later batches back
 * and fills the hole from the outbox table. Listeners see every message once,
 * in id order.
 */
import { Message } from '../core/message.ts';
import type { FeedListener } from './store.ts';

/** Reads committed messages with afterId < id <= upTo, in id order (a page of them: it may stop early). */
export type RangeReader = (afterId: number, upTo: number) => Promise<Message[]>;

interface Held {
  from: number;
  to: number;
  messages: Message[] | null;
}

// A batch from our own commit may overtake the NOTIFY of an earlier batch from
// another instance; give that NOTIFY a moment before reading the table.
const LOCAL_GAP_GRACE_MS = 25;
/**
 * Batches held back past this many are folded into one id range, read from the table: a feed that
 * fell far behind (a long LISTEN outage under load) holds bounded memory and still catches up.
 */
const MAX_HELD = 10_000;

/** Releases committed batches to listeners strictly in id order. */
export class Feed {
  #lastId = 0;
  #held: Held[] = [];
  #listeners: FeedListener[] = [];
  #repairing: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #readRange: RangeReader;
  #onError: (err: unknown) => void;

  constructor(readRange: RangeReader, onError: (err: unknown) => void) {
    this.#readRange = readRange;
    this.#onError = onError;
  }

  /** The highest id released to listeners. */
  get lastId(): number {
    return this.#lastId;
  }

  /** Sets the starting point (the outbox head at start). */
  startAt(id: number): void {
    this.#lastId = id;
  }

  onMessages(listener: FeedListener): void {
    this.#listeners.push(listener);
  }

  /** A batch with ids from..to; `messages` null when only the range is known. */
  offer(from: number, to: number, messages: Message[] | null, local: boolean): void {
    if (to <= this.#lastId) return;
    if (messages !== null && from <= this.#lastId + 1) {
      this.#release(messages.filter((m) => m.id > this.#lastId));
      this.#releaseHeld();
      return;
    }
    this.#held.push({ from, to, messages });
    if (this.#held.length > MAX_HELD) this.#held = [{ from: this.#heldFrom(), to: this.#heldUpTo(), messages: null }];
    this.#scheduleRepair(local && messages !== null ? LOCAL_GAP_GRACE_MS : 0);
  }

  // Loops, not Math.max(...held): a spread of some 120,000 arguments throws.
  #heldFrom(): number {
    let from = Infinity;
    for (const h of this.#held) if (h.from < from) from = h.from;
    return from;
  }

  #heldUpTo(): number {
    let to = 0;
    for (const h of this.#held) if (h.to > to) to = h.to;
    return to;
  }

  /** Reads everything after lastId up to `head` (after a reconnect, or a poll). */
  catchUp(head: number): Promise<void> {
    if (head > this.#lastId) this.#held.push({ from: head, to: head, messages: null });
    return this.#repair();
  }

  #release(messages: Message[]): void {
    if (messages.length === 0) return;
    this.#lastId = messages[messages.length - 1]!.id;
    for (const listener of this.#listeners) {
      try {
        listener(messages);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  #releaseHeld(): void {
    this.#held.sort((a, b) => a.from - b.from);
    while (this.#held.length > 0) {
      const next = this.#held[0]!;
      if (next.to <= this.#lastId) {
        this.#held.shift();
      } else if (next.messages !== null && next.from <= this.#lastId + 1) {
        this.#held.shift();
        this.#release(next.messages.filter((m) => m.id > this.#lastId));
      } else {
        return;
      }
    }
  }

  #scheduleRepair(delayMs: number): void {
    if (this.#timer !== null) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#repair();
    }, delayMs);
  }

  /** Fills holes from the table until nothing is held back. Single-flight. */
  #repair(): Promise<void> {
    this.#repairing ??= (async () => {
      // Yield first: were this body to finish synchronously, its `finally` would run
      // before the assignment above and leave a settled promise in #repairing forever.
      await undefined;
      try {
        while (this.#held.length > 0) {
          this.#releaseHeld();
          if (this.#held.length === 0) break;
          const upTo = this.#heldUpTo();
          const rows = await this.#readRange(this.#lastId, upTo);
          // An empty read means the rest of the range was expired by retention: skip it.
          if (rows.length === 0) this.#lastId = upTo;
          else this.#release(rows.filter((m) => m.id > this.#lastId));
        }
      } catch (err) {
        this.#onError(err);
        this.#scheduleRetry();
      } finally {
        this.#repairing = null;
      }
    })();
    return this.#repairing;
  }

  #scheduleRetry(): void {
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        void this.#repair();
      }, 1000);
    }
  }

  /** Stops timers. */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
