/**
 * Cursor moves waiting to be written. Deliveries move cursors constantly; the
 * database sees them in batches (every second, and on disconnect), never one
 * write per delivered message. A move counts from the moment it is made, so a
 * reader sees it while it waits and while it is being written.
 */

/** One cursor's newest position. */
export interface CursorMove {
  uid: string;
  channel: string;
  id: number;
}

export class CursorBatch {
  #pending = new Map<string, CursorMove>();
  #writing = new Map<string, CursorMove>();

  /** Moves a cursor forward (never back). */
  advance(uid: string, channel: string, id: number): void {
    const key = keyOf(uid, channel);
    const pending = this.#pending.get(key);
    if (pending === undefined) this.#pending.set(key, { uid, channel, id });
    else if (id > pending.id) pending.id = id;
  }

  /** The newest position not yet known to be written, or 0. */
  unwritten(uid: string, channel: string): number {
    const key = keyOf(uid, channel);
    return Math.max(this.#pending.get(key)?.id ?? 0, this.#writing.get(key)?.id ?? 0);
  }

  /** Hands the waiting moves to `write`; on failure they wait again for the next flush. */
  async flush(write: (moves: CursorMove[]) => Promise<void>): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    for (const [key, move] of batch) this.#writing.set(key, move);
    try {
      await write([...batch.values()]);
    } catch (err) {
      for (const move of batch.values()) this.advance(move.uid, move.channel, move.id);
      throw err;
    } finally {
      for (const [key, move] of batch) if (this.#writing.get(key) === move) this.#writing.delete(key);
    }
  }
}

function keyOf(uid: string, channel: string): string {
  return `${uid}\u0000${channel}`;
}
