/**
 * The local registry: which sessions of this instance listen on which channel,
 * and which sessions belong to which user. Fans each message out to the local
 * subscribers of its channel; the store's feed calls it in id order.
 *
 * Where the runtime fans out natively (Bun), live subscriptions that need no
 * per-delivery work move to its topics: one publish per message and format,
 * however many sockets listen. The rest (SSE, replays in progress, cursor-tracked
 * personal channels, other runtimes) are written one by one.
 */
import { ALL_CHANNEL, COMMAND_CHANNEL, RESERVED_PREFIX } from './channels.ts';
import type { DeliveryFormat, Message } from './message.ts';
import { nativeTopic, type Session, type SubscriptionKind } from './session.ts';

/** Publishes a frame to every socket subscribed to a native topic. */
export type Broadcast = (topic: string, frame: string) => void;

/** Channel -> sessions and user -> sessions, for this instance only. */
export class Hub {
  readonly #channels = new Map<string, Set<Session>>();
  readonly #users = new Map<string, Set<Session>>();
  readonly #sessions = new Map<string, Session>();
  /** client address -> how many sessions came from it (MESH_MAX_CONNECTIONS_PER_ADDRESS). */
  readonly #byAddress = new Map<string, number>();
  /** channel -> format -> the sessions that get it through the native topic. */
  readonly #native = new Map<string, Map<DeliveryFormat, Set<Session>>>();
  #broadcast: Broadcast | undefined;
  #onCommand: ((message: Message) => void) | undefined;
  /** format -> how many sessions are in the native `$all` topic. */
  readonly #allNative = new Map<DeliveryFormat, number>();
  /** Messages handed to local subscribers so far, one per subscriber (a running total, for metrics). */
  delivered = 0;
  readonly #onError: (err: unknown) => void;

  /** `onError` hears of a delivery that threw (a bug): it is reported, and the rest of the batch still goes out. */
  constructor(onError: (err: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  /** Hands `$cmd` messages to `run`, at their place in the feed (so what follows them sees their effect). */
  onCommand(run: (message: Message) => void): void {
    this.#onCommand = run;
  }

  /** Enables native fan-out (once the server that owns the sockets is running). */
  useBroadcast(broadcast: Broadcast): void {
    this.#broadcast = broadcast;
  }

  /** Registers a connected session. */
  attach(session: Session): void {
    this.#sessions.set(session.id, session);
    if (session.address !== undefined) this.#byAddress.set(session.address, (this.#byAddress.get(session.address) ?? 0) + 1);
  }

  /** How many sessions of this instance came from `address`. */
  connectionsFrom(address: string): number {
    return this.#byAddress.get(address) ?? 0;
  }

  /** Records that a session now speaks for `uid`. */
  bindUser(session: Session, uid: string): void {
    add(this.#users, uid, session);
  }

  unbindUser(session: Session, uid: string): void {
    remove(this.#users, uid, session);
  }

  /**
   * Adds an authenticated session to `$all` (sendToAll). Not a subscription: every
   * authenticated session is in it, so a count per format is all the hub keeps.
   */
  joinAll(session: Session): void {
    if (this.#broadcast === undefined || !session.joinAllNatively()) return;
    this.#allNative.set(session.format, (this.#allNative.get(session.format) ?? 0) + 1);
  }

  /** Subscribes a session (see Session.subscribe) and starts delivering to it. */
  subscribe(session: Session, channel: string, name: string, kind: SubscriptionKind, replayAfter?: number): void {
    // A session already torn down would stay in the channel's set for good: nothing would detach it again.
    if (session.closed) return;
    session.subscribe(channel, name, kind, replayAfter);
    add(this.#channels, channel, session);
  }

  /** Moves a live subscription to the runtime's native fan-out when it can go there. */
  goLive(session: Session, channel: string, feedPosition: number): void {
    if (this.#broadcast === undefined || !session.goNative(channel, feedPosition)) return;
    remove(this.#channels, channel, session);
    let formats = this.#native.get(channel);
    if (formats === undefined) this.#native.set(channel, (formats = new Map()));
    add(formats, session.format, session);
  }

  unsubscribe(session: Session, channel: string): void {
    this.#forget(session, channel);
    session.unsubscribe(channel);
  }

  #forget(session: Session, channel: string): void {
    if (!session.isNative(channel)) return remove(this.#channels, channel, session);
    const formats = this.#native.get(channel);
    if (formats === undefined) return;
    remove(formats, session.format, session);
    if (formats.size === 0) this.#native.delete(channel);
  }

  /** Forgets a session entirely: its channels, its user, itself. */
  detach(session: Session): void {
    for (const channel of session.channels()) this.#forget(session, channel);
    if (session.uid !== undefined) remove(this.#users, session.uid, session);
    if (session.allNative) {
      const n = this.#allNative.get(session.format)! - 1;
      if (n > 0) this.#allNative.set(session.format, n);
      else this.#allNative.delete(session.format);
    }
    if (!this.#sessions.delete(session.id) || session.address === undefined) return;
    const n = this.#byAddress.get(session.address)! - 1;
    if (n > 0) this.#byAddress.set(session.address, n);
    else this.#byAddress.delete(session.address);
  }

  /** Fans a batch of messages (in id order) out to local subscribers. */
  deliver(batch: readonly Message[]): void {
    for (const message of batch) {
      if (message.channel === COMMAND_CHANNEL) {
        try {
          this.#onCommand?.(message);
        } catch (err) {
          this.#onError(err);
        }
        continue;
      }
      if (message.channel === ALL_CHANNEL) {
        this.#deliverAll(message);
        continue;
      }
      const subscribers = this.#channels.get(message.channel);
      if (subscribers !== undefined) {
        for (const session of subscribers) this.#deliverTo(session, message);
        this.delivered += subscribers.size;
      }
      const native = this.#native.get(message.channel);
      if (native === undefined) continue;
      for (const [format, sessions] of native) {
        this.delivered += sessions.size;
        // A topic publish reaches every socket on it: a message that must skip some goes socket by socket.
        if (message.exclude === null) this.#broadcast!(nativeTopic(format, message.channel), message.frame(format));
        else for (const session of sessions) this.#deliverTo(session, message);
      }
    }
  }

  // One session's failure (a bug, a socket torn down under us) is reported and costs no one else their message.
  #deliverTo(session: Session, message: Message): void {
    try {
      session.deliver(message);
    } catch (err) {
      this.#onError(err);
    }
  }

  #deliverAllTo(session: Session, message: Message): void {
    try {
      session.deliverAll(message);
    } catch (err) {
      this.#onError(err);
    }
  }

  #deliverAll(message: Message): void {
    this.delivered += this.#sessions.size;
    for (const format of this.#allNative.keys()) {
      if (message.exclude === null) this.#broadcast!(nativeTopic(format, ALL_CHANNEL), message.frame(format));
    }
    // Sessions outside the native topic, and, for a message that leaves some out, everyone.
    for (const session of this.#sessions.values()) {
      if (!session.allNative || message.exclude !== null) this.#deliverAllTo(session, message);
    }
  }

  /**
   * Checks the backlog of every session fanned out natively: their writes happen in the
   * runtime, where no per-message check runs. The server calls this a few times a second.
   */
  checkNativeBacklogs(): void {
    // Every session with a native subscription is in the native `$all` topic too.
    for (const session of this.#sessions.values()) if (session.allNative) session.checkBacklog();
  }

  /** Number of local subscribers of a channel. */
  subscriberCount(channel: string): number {
    let n = this.#channels.get(channel)?.size ?? 0;
    for (const sessions of this.#native.get(channel)?.values() ?? []) n += sessions.size;
    return n;
  }

  /** Channels with at least one local subscriber (not counting pgmesh's own `$` ones). */
  channelCount(): number {
    let n = 0;
    for (const channel of this.#channels.keys()) if (!channel.startsWith(RESERVED_PREFIX)) n++;
    for (const channel of this.#native.keys()) if (!this.#channels.has(channel) && !channel.startsWith(RESERVED_PREFIX)) n++;
    return n;
  }

  /** How many users have a session on this instance. */
  userCount(): number {
    return this.#users.size;
  }

  /** How many sessions (realtime connections) this instance holds. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Its sessions by transport: SSE streams, and WebSockets (pgmesh's, Pusher's). */
  byTransport(): { websocket: number; sse: number } {
    let sse = 0;
    for (const session of this.#sessions.values()) if (session.transport === 'sse') sse++;
    return { websocket: this.#sessions.size - sse, sse };
  }

  /** Every session on this instance. */
  sessions(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  /** The session with this connection id, if it is on this instance. */
  session(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  /** The sessions of a user on this instance. */
  sessionsOf(uid: string): readonly Session[] {
    return [...(this.#users.get(uid) ?? [])];
  }
}

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
