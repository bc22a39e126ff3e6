/**
 * One connected client, whatever its transport: who it is, what it is
 * subscribed to and how far each subscription has been delivered, its queue
 * of ops and its timers. All of a connection's state lives here; the
 * transport only encodes what the session hands its sink.
 *
 * Subscriptions that replay history buffer live messages until the replay is
 * written, then drop anything already delivered: no gap, no duplicate.
 */
import type { Identity } from './auth.ts';
import type { DeliveryFormat, Message } from './message.ts';
import type { Reply } from './protocol.ts';
import { ALL_CHANNEL, RESERVED_PREFIX } from './channels.ts';
import { closeReason } from './edge-input.ts';
import type { TokenBucket } from './token-bucket.ts';

export type TransportName = 'websocket' | 'sse';

/** What a transport gives a session to write to; the transport owns the encoding. */
export interface SessionSink {
  /** Writes a message; `name` is the channel as the client subscribed to it. */
  message(message: Message, name: string): void;
  reply(reply: Reply): void;
  /** A server event that is not a message (`expired`, `join`, …). */
  notice(event: string, data: Record<string, unknown>): void;
  close(code: number, reason: string): void;
  /** Bytes accepted but not yet written to the peer. */
  buffered(): number;
  /** Where the runtime fans out natively (Bun's topics): the hub then publishes once per message, not once per socket. */
  topics?: {
    subscribe(topic: string): void;
    unsubscribe(topic: string): void;
  };
}

/** The runtime topic carrying `channel`'s frames in one format (frames differ by format, so topics do too). */
export function nativeTopic(format: DeliveryFormat, channel: string): string {
  return `${format}:${channel}`;
}

// `<instance>.<suffix>`: MESH_INSTANCE_ID's alphabet, and a suffix that pgmesh writes in base 36 (Pusher's `<digits>.<digits>` fits too).
const CONNECTION_ID = /^[\w.-]{1,64}\.[\w-]{1,40}$/;

/** Whether `id` has the shape of the connection ids pgmesh gives out (so it is safe in a path, a header, a log line). */
export function isConnectionId(id: string): boolean {
  return CONNECTION_ID.test(id);
}

/** Close codes pgmesh uses (4000-4999: application closes survive every runtime). */
export const CloseCode = {
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  /** The instance is draining for a restart or deploy: reconnect (the balancer sends you elsewhere). */
  SERVICE_RESTART: 1012,
  TOKEN_EXPIRED: 4001,
  AUTH_TIMEOUT: 4002,
  KICKED: 4003,
  SLOW_CONSUMER: 4008,
  FLOOD: 4029,
  /** A limit of the server (connections per user or per address) was reached: try later. */
  LIMIT: 4030,
} as const;

const REASONS: Record<number, string> = {
  [CloseCode.GOING_AWAY]: 'server_shutdown',
  [CloseCode.SERVICE_RESTART]: 'server_shutdown',
  [CloseCode.TOO_BIG]: 'frame_too_large',
  [CloseCode.TOKEN_EXPIRED]: 'token_expired',
  [CloseCode.AUTH_TIMEOUT]: 'auth_timeout',
  [CloseCode.KICKED]: 'kicked',
  [CloseCode.SLOW_CONSUMER]: 'slow_consumer',
  [CloseCode.FLOOD]: 'flood',
  [CloseCode.LIMIT]: 'limit',
};

/** Why a closed session went, as the disconnect webhook says it (`client_closed` when the client left). */
export function disconnectReason(session: Session): string {
  return session.closedWith === null ? 'client_closed' : (REASONS[session.closedWith] ?? 'server_closed');
}

/**
 * What a subscription is for: `plain` messages; `tracked` messages that move the user's
 * server-side cursor (their own channel, without explicit acks); `presence` the join and
 * leave events of a channel, written as notices.
 */
export type SubscriptionKind = 'plain' | 'tracked' | 'presence';

/** The join/leave event a presence message carries. */
interface PresenceEvent {
  event: 'join' | 'leave';
  uid: string;
  /** What a joining member says about itself (Pusher's user_info). */
  info?: unknown;
}
const PRESENCE_EVENT = {};

interface Subscription {
  /** The channel as the client named it (frames carry this name). */
  name: string;
  /** Highest id written for this channel; later duplicates are dropped. */
  lastId: number;
  /** Live messages held back while history is being replayed; null once live. */
  held: Message[] | null;
  kind: SubscriptionKind;
  /** Delivered by the runtime's native topic publish, not by deliver(). */
  native: boolean;
}

export interface SessionOptions {
  /** Cluster-unique connection id. */
  id: string;
  format: DeliveryFormat;
  transport: TransportName;
  /** The client acks explicitly: its cursors move on `ack` only, not on delivery. */
  ackMode: boolean;
  /** The client's address, as the deployment's proxies tell it. */
  address?: string;
}

/** What every session of a gateway shares: one object, not a copy per connection. */
export interface SessionPolicy {
  /** Queued bytes past which the client is cut off as a slow consumer. */
  maxBuffered: number;
  /** Called after a message of a tracked subscription was written. */
  onDelivered?: (session: Session, message: Message) => void;
}

/** The op queue of a session with nothing queued: one settled promise shared by all. */
export const NOTHING_QUEUED: Promise<unknown> = Promise.resolve();

// Timer callbacks take the session as an argument: no closure per connection.
function authTimedOut(session: Session): void {
  if (session.identity === null) session.close(CloseCode.AUTH_TIMEOUT, 'not authenticated in time');
}
function tokenExpired(session: Session): void {
  session.close(CloseCode.TOKEN_EXPIRED, 'token expired');
}

/** One client connection. */
export class Session {
  readonly id: string;
  readonly format: DeliveryFormat;
  readonly transport: TransportName;
  readonly ackMode: boolean;
  readonly address: string | undefined;
  readonly connectedAt = Date.now();
  identity: Identity | null = null;
  closed = false;
  /** The close code the server ended it with; null while open, or when the client left. */
  closedWith: number | null = null;
  /** The tail of this session's op queue: ops run one at a time, in order. */
  queue: Promise<unknown> = NOTHING_QUEUED;
  /** Ops waiting or running. */
  queued = 0;
  // Two fields rather than a map of timers: an idle connection costs a few bytes less.
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #authTimer: ReturnType<typeof setTimeout> | undefined;
  /** What it may still send (MESH_MAX_FRAMES_PER_SECOND); made at its first frame, so an idle connection has none. */
  frames: TokenBucket | undefined;
  /** In the runtime's native topic of `$all` (every authenticated connection). */
  allNative = false;
  readonly #sink: SessionSink;
  readonly #policy: SessionPolicy;
  readonly #subs = new Map<string, Subscription>();

  constructor(sink: SessionSink, options: SessionOptions, policy: SessionPolicy) {
    this.id = options.id;
    this.format = options.format;
    this.transport = options.transport;
    this.ackMode = options.ackMode;
    this.address = options.address;
    this.#sink = sink;
    this.#policy = policy;
  }

  get uid(): string | undefined {
    return this.identity?.uid;
  }

  /** How many channels it is subscribed to (not counting pgmesh's own `$` ones). */
  get subscriptionCount(): number {
    let n = 0;
    for (const channel of this.#subs.keys()) if (!channel.startsWith(RESERVED_PREFIX)) n++;
    return n;
  }

  /** How many channels it holds against MESH_MAX_SUBSCRIPTIONS: every subscription but the join/leave events that come with a presence one. */
  get channelsHeld(): number {
    let n = 0;
    for (const sub of this.#subs.values()) if (sub.kind !== 'presence') n++;
    return n;
  }

  /** Channels this session is subscribed to (as stored). */
  channels(): IterableIterator<string> {
    return this.#subs.keys();
  }

  isSubscribed(channel: string): boolean {
    return this.#subs.has(channel);
  }

  reply(reply: Reply): void {
    if (this.closed) return;
    this.#sink.reply(reply);
    this.checkBacklog();
  }

  /** Sends a server event that is not a message (e.g. `expired`). */
  notice(event: string, data: Record<string, unknown>): void {
    if (this.closed) return;
    this.#sink.notice(event, data);
    this.checkBacklog();
  }

  /** Whether the token-expiry timer is set. */
  get expiryArmed(): boolean {
    return this.#expiryTimer !== undefined;
  }

  /**
   * Arms (or with null, clears) one of the session's deadlines: `auth` closes it with 4002
   * if it is still unauthenticated then, `expiry` closes it with 4001 when its token expires.
   */
  setTimer(purpose: 'expiry' | 'auth', ms: number | null): void {
    const timer = ms !== null && !this.closed ? setTimeout(purpose === 'auth' ? authTimedOut : tokenExpired, ms, this) : undefined;
    if (purpose === 'expiry') {
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = timer;
    } else {
      clearTimeout(this.#authTimer);
      this.#authTimer = timer;
    }
  }

  #stopTimers(): void {
    clearTimeout(this.#expiryTimer);
    clearTimeout(this.#authTimer);
    this.#expiryTimer = this.#authTimer = undefined;
  }

  /** Joins the runtime's native topic for `$all`, where there is one. */
  joinAllNatively(): boolean {
    const topics = this.#sink.topics;
    if (!topics || this.closed || this.allNative) return false;
    topics.subscribe(this.topic(ALL_CHANNEL));
    this.allNative = true;
    return true;
  }

  /** Writes a message for every connection (`$all`), unless it leaves this one out. */
  deliverAll(message: Message): void {
    if (this.closed || this.identity === null || message.exclude?.includes(this.id)) return;
    this.#sink.message(message, ALL_CHANNEL);
    this.checkBacklog();
  }

  /** Starts a subscription. With `replayAfter`, live messages are held until finishReplay(). */
  subscribe(channel: string, name: string, kind: SubscriptionKind, replayAfter?: number): void {
    this.#subs.set(channel, { name, lastId: replayAfter ?? 0, held: replayAfter === undefined ? null : [], kind, native: false });
  }

  /** The native topic of a channel for this session's format. */
  topic(channel: string): string {
    return nativeTopic(this.format, channel);
  }

  /**
   * Hands a live subscription over to the runtime's native fan-out, where it can go:
   * the transport has topics, nothing is held back, no cursor needs each delivery,
   * and frames name the channel as stored.
   */
  goNative(channel: string, feedPosition: number): boolean {
    const sub = this.#subs.get(channel);
    const topics = this.#sink.topics;
    if (!sub || !topics || sub.held !== null || sub.kind !== 'plain' || sub.native || sub.name !== channel || this.closed) return false;
    // A client that resumed from an id this instance's feed has not reached yet (it saw it on
    // another instance) would get those messages again from a native topic, which drops no
    // duplicate: it stays on the per-session path, which does.
    if (sub.lastId > feedPosition) return false;
    topics.subscribe(this.topic(channel));
    sub.native = true;
    return true;
  }

  isNative(channel: string): boolean {
    return this.#subs.get(channel)?.native === true;
  }

  /** Writes replayed history, then the live messages held meanwhile, and goes live. */
  finishReplay(channel: string, history: Iterable<Message>): void {
    const sub = this.#subs.get(channel);
    if (!sub || sub.held === null) return;
    for (const message of history) this.#write(sub, message);
    const held = sub.held;
    sub.held = null;
    for (const message of held) this.#write(sub, message);
  }

  /**
   * Folds a presence subscription's events into `members` instead of writing them: the list the
   * client is about to get then includes every join and leave up to here, and the events after it
   * come live, after the list (a client that got an event before its list would lose it). With
   * `last`, the events held meanwhile are folded too and the subscription goes live. `members`
   * maps each uid to what it said about itself, as JSON text.
   */
  foldPresence(channel: string, history: Iterable<Message>, members: Map<string, string | null>, last: boolean): void {
    const sub = this.#subs.get(channel);
    if (!sub || sub.held === null || sub.kind !== 'presence') return;
    const fold = (message: Message) => {
      if (message.id <= sub.lastId) return;
      sub.lastId = message.id;
      const { event, uid, info } = message.memo(PRESENCE_EVENT, (m) => JSON.parse(m.data) as PresenceEvent);
      if (event === 'join') members.set(uid, info === undefined ? null : JSON.stringify(info));
      else members.delete(uid);
    };
    for (const message of history) fold(message);
    if (!last) return;
    for (const message of sub.held) fold(message);
    sub.held = null;
  }

  /** Writes more replayed history while still holding live messages back. */
  replay(channel: string, history: Iterable<Message>): void {
    const sub = this.#subs.get(channel);
    if (!sub || sub.held === null) return;
    for (const message of history) this.#write(sub, message);
  }

  unsubscribe(channel: string): boolean {
    const sub = this.#subs.get(channel);
    if (sub?.native && !this.closed) this.#sink.topics?.unsubscribe(this.topic(channel));
    return this.#subs.delete(channel);
  }

  /** Hands a live message to the session (the hub calls this in id order per channel). */
  deliver(message: Message): void {
    const sub = this.#subs.get(message.channel);
    if (!sub) return;
    if (sub.held !== null) sub.held.push(message);
    else this.#write(sub, message);
  }

  #write(sub: Subscription, message: Message): void {
    if (message.id <= sub.lastId || this.closed) return;
    sub.lastId = message.id;
    if (message.exclude?.includes(this.id)) return;
    if (sub.kind === 'presence') {
      const { event, uid, info } = message.memo(PRESENCE_EVENT, (m) => JSON.parse(m.data) as PresenceEvent);
      this.#sink.notice(event, info === undefined ? { channel: sub.name, uid } : { channel: sub.name, uid, info });
    } else {
      this.#sink.message(message, sub.name);
    }
    this.checkBacklog();
    if (sub.kind === 'tracked') this.#policy.onDelivered?.(this, message);
  }

  /** Cuts the client off (4008) when it has left more than maxBuffered bytes unread. */
  checkBacklog(): void {
    if (this.#sink.buffered() > this.#policy.maxBuffered) this.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
  }

  /** Closes the transport; the transport's close event then tears the session down. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = code;
    this.#stopTimers();
    this.#sink.close(code, closeReason(reason));
  }

  /** Marks the session gone after its transport closed by itself; stops its timers. */
  ended(): void {
    this.closed = true;
    this.#stopTimers();
  }
}
