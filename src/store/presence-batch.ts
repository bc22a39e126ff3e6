/**
 * Presence changes waiting to be written. Connects, subscribes and disconnects
 * happen in storms; the database sees their net effect in batches, never one
 * write per event: a connection that comes and goes between two flushes is
 * never written at all.
 */

export interface ConnectionUp {
  uid: string;
  transport: string;
  connectedAt: number;
  /** The client's address, as the deployment's proxies tell it (shown by the server API and the console). */
  address?: string;
}

/** The JSON the SQL function mesh_cluster_apply() takes. */
export interface PresenceBatchJson {
  up: ([string, string, string, number] | [string, string, string, number, string])[];
  /** Connection ids gone, each with why (for the disconnect webhook). */
  down: [string, string][];
  /** [connection, channel, uid] or, for a presence member with something to say about itself, [connection, channel, uid, info]. */
  sub: ([string, string, string] | [string, string, string, string])[];
  unsub: [string, string][];
}

export class PresenceBatch {
  #up = new Map<string, ConnectionUp>();
  /** connection -> why it went */
  #down = new Map<string, string>();
  /**
   * connection -> channel -> subscribed (true, or its member info) or left (false), each with the uid
   * the connection had when it was queued: a connection whose uid is settled later (a Pusher socket,
   * nobody until its first presence channel) never has a later write go out under its earlier uid.
   */
  #subs = new Map<string, Map<string, { uid: string; on: boolean | string }>>();

  get empty(): boolean {
    return this.#up.size === 0 && this.#down.size === 0 && this.#subs.size === 0;
  }

  connected(id: string, up: ConnectionUp): void {
    // Connection ids are never reused: news of one after its end is late, and would write a ghost.
    if (this.#down.has(id)) return;
    this.#up.set(id, up);
  }

  subscribed(id: string, uid: string, channels: readonly string[], info?: string): void {
    this.#mark(id, uid, channels, info ?? true);
  }

  unsubscribed(id: string, uid: string, channels: readonly string[]): void {
    this.#mark(id, uid, channels, false);
  }

  disconnected(id: string, reason: string): void {
    // Whatever of it is still waiting is never written; a row written by an earlier flush is deleted.
    this.#up.delete(id);
    this.#subs.delete(id);
    this.#down.set(id, reason);
  }

  #mark(id: string, uid: string, channels: readonly string[], on: boolean | string): void {
    if (this.#down.has(id)) return;
    let entry = this.#subs.get(id);
    if (entry === undefined) this.#subs.set(id, (entry = new Map()));
    for (const channel of channels) entry.set(channel, { uid, on });
  }

  /** Takes everything waiting, leaving the batch empty. */
  take(): PresenceBatch {
    const taken = new PresenceBatch();
    taken.#up = this.#up;
    taken.#down = this.#down;
    taken.#subs = this.#subs;
    this.#up = new Map();
    this.#down = new Map();
    this.#subs = new Map();
    return taken;
  }

  /** This batch as one batch per connection: to write apart what the database refuses from what it takes. */
  perConnection(): PresenceBatch[] {
    const ids = new Set([...this.#up.keys(), ...this.#down.keys(), ...this.#subs.keys()]);
    return [...ids].map((id) => {
      const part = new PresenceBatch();
      const up = this.#up.get(id);
      const down = this.#down.get(id);
      const subs = this.#subs.get(id);
      if (up !== undefined) part.#up.set(id, up);
      if (down !== undefined) part.#down.set(id, down);
      if (subs !== undefined) part.#subs.set(id, subs);
      return part;
    });
  }

  /** Puts a batch that could not be written back in front of what came since. */
  restore(older: PresenceBatch): void {
    const newer = this.take();
    this.#up = older.#up;
    this.#down = older.#down;
    this.#subs = older.#subs;
    for (const [id, up] of newer.#up) this.connected(id, up);
    for (const [id, channels] of newer.#subs) {
      for (const [channel, { uid, on }] of channels) this.#mark(id, uid, [channel], on);
    }
    for (const [id, reason] of newer.#down) this.disconnected(id, reason);
  }

  toJSON(): PresenceBatchJson {
    const sub: PresenceBatchJson['sub'] = [];
    const unsub: [string, string][] = [];
    for (const [id, channels] of this.#subs) {
      for (const [channel, { uid, on }] of channels) {
        if (on === false) unsub.push([id, channel]);
        else sub.push(on === true ? [id, channel, uid] : [id, channel, uid, on]);
      }
    }
    return {
      up: [...this.#up].map(([id, u]) => (u.address === undefined ? [id, u.uid, u.transport, u.connectedAt] : [id, u.uid, u.transport, u.connectedAt, u.address])),
      down: [...this.#down],
      sub,
      unsub,
    };
  }
}
