/**
 * The local registry: which sessions of this instance listen on which channel,
 * and which sessions belong to which user. Fans each message out to the local
 * subscribers of its channel; the store's feed calls it in id order.
 */
import type { Message } from './message.ts';
import type { Session } from './session.ts';

/** Channel -> sessions and user -> sessions, for this instance only. */
export class Hub {
  readonly #channels = new Map<string, Set<Session>>();
  readonly #users = new Map<string, Set<Session>>();
  readonly #sessions = new Set<Session>();

  /** Registers a connected session. */
  attach(session: Session): void {
    this.#sessions.add(session);
  }

  /** Records that a session now speaks for `uid`. */
  bindUser(session: Session, uid: string): void {
    add(this.#users, uid, session);
  }

  unbindUser(session: Session, uid: string): void {
    remove(this.#users, uid, session);
  }

  subscribe(session: Session, channel: string): void {
    add(this.#channels, channel, session);
  }

  unsubscribe(session: Session, channel: string): void {
    remove(this.#channels, channel, session);
  }

  /** Forgets a session entirely: its channels, its user, itself. */
  detach(session: Session): void {
    for (const channel of session.channels()) remove(this.#channels, channel, session);
    if (session.uid !== undefined) remove(this.#users, session.uid, session);
    this.#sessions.delete(session);
  }

  /** Fans a batch of messages (in id order) out to local subscribers. */
  deliver(batch: readonly Message[]): void {
    for (const message of batch) {
      const subscribers = this.#channels.get(message.channel);
      if (subscribers === undefined) continue;
      for (const session of subscribers) session.deliver(message);
    }
  }

  /** Sessions of a user on this instance. */
  sessionsOf(uid: string): ReadonlySet<Session> {
    return this.#users.get(uid) ?? EMPTY;
  }

  /** Number of local subscribers of a channel. */
  subscriberCount(channel: string): number {
    return this.#channels.get(channel)?.size ?? 0;
  }

  /** Channels with at least one local subscriber. */
  channelCount(): number {
    return this.#channels.size;
  }

  /** Users with at least one session on this instance. */
  users(): IterableIterator<string> {
    return this.#users.keys();
  }

  /** Every session on this instance. */
  sessions(): ReadonlySet<Session> {
    return this.#sessions;
  }
}

const EMPTY: ReadonlySet<Session> = new Set();

function add<K>(map: Map<K, Set<Session>>, key: K, session: Session): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(session);
}

function remove<K>(map: Map<K, Set<Session>>, key: K, session: Session): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(session);
  if (set.size === 0) map.delete(key);
}
