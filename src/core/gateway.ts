/**
 * The ops every transport speaks. A transport opens a session with a sink of
 * its own, hands the gateway decoded frames, and closes it; the gateway
 * authenticates, authorises, subscribes with replay, publishes through the
 * message log and returns a typed Reply for the transport to encode. Ops of
 * one session run one at a time, in order.
 */
import { isOwnConnection, type Authenticator, type Identity } from './auth.ts';
import type { Backend } from './backend.ts';
import { finishedWithin } from './deadline.ts';
import { canPublish, canSubscribe, isOwnChannel, presenceChannel, resolveChannel, userChannel } from './channels.ts';
import type { CommandTarget, MeshCommand } from './commands.ts';
import { MeshError, asMeshError, type MeshErrorCode } from './errors.ts';
import type { Hub } from './hub.ts';
import type { DeliveryFormat } from './message.ts';
import type { MessageLog, NewMessage } from './message-log.ts';
import { type Command, type Reply, decodeFrame, failed, ok, parseCommand, replyOp, ridOf } from './protocol.ts';
import { TokenBucket } from './token-bucket.ts';
import { TurnGate } from './turn-gate.ts';
import { CloseCode, NOTHING_QUEUED, Session, type SessionPolicy, type SessionSink, type SubscriptionKind, type TransportName } from './session.ts';

/** Who is in a channel, cluster-wide, and the last message id that answer includes. */
export interface MemberList {
  members(channel: string): Promise<{ uids: string[]; info: Record<string, string | null>; at: number }>;
}

/** Hears a session's lifecycle (presence bookkeeping, hooks); channels are the user-visible ones, as stored. */
export interface SessionObserver {
  authenticated(session: Session): void;
  /** `info`: what a presence member says about itself (JSON text), for the member list and join events. */
  subscribed(session: Session, channels: readonly string[], info?: string): void;
  unsubscribed(session: Session, channels: readonly string[]): void;
  closed(session: Session): void;
}

export interface GatewayOptions {
  hub: Hub;
  log: MessageLog;
  auth: Authenticator;
  /** Prefix of connection ids, unique in the cluster. */
  instance: string;
  /** The region this instance runs in, told to clients beside the instance. */
  region?: string;
  /** Largest message data, in bytes. */
  maxMessage: number;
  /** Deepest nesting of JSON a client may send (MESH_MAX_JSON_DEPTH). */
  maxJsonDepth: number;
  /** Unread bytes past which a client is cut off. */
  maxBuffered: number;
  /** A connection that has not authenticated by then is closed (4002). */
  authTimeoutMs: number;
  /** Token expiries further off than this get no timer until armDueExpiries() finds them due (default 60 s). */
  expiryHorizonMs?: number;
  observer?: SessionObserver;
  /** Answers `"presence": true` subscribes; without it they are refused. */
  members?: MemberList;
  onError?: (err: unknown) => void;
  /** Told the code of every error reply a client gets (metrics). */
  onErrorReply?: (code: MeshErrorCode) => void;
  /** Answers `rpc` ops (MESH_RPC_URL); without it they are refused. */
  backend?: Backend;
  /** Channels one connection may be subscribed to (MESH_MAX_SUBSCRIPTIONS). */
  maxSubscriptions: number;
  /** Connections one user may hold on this instance; 0 is no limit (MESH_MAX_CONNECTIONS_PER_USER). */
  maxConnectionsPerUser: number;
  /** Frames a connection may send a second, twice that in a burst; 0 is no limit (MESH_MAX_FRAMES_PER_SECOND). */
  maxFramesPerSecond: number;
  /** Told of every refusal at a limit (metrics). */
  onLimit?: (limit: 'subscriptions' | 'per_user' | 'frames') => void;
  /** Resolves once the presence changes told to the observer so far are visible to every instance (the cluster's write). */
  presenceWritten?: () => Promise<void>;
}

export interface OpenOptions {
  format: DeliveryFormat;
  transport: TransportName;
  /** The client acks explicitly: its cursors move on `ack` only, not on delivery. */
  ackMode: boolean;
  /** The client's address (for logs and limits). */
  address?: string;
  /** A connection id of the protocol's own (Pusher's socket_id), unique in the cluster; default `<instance>.<random>`. */
  id?: string;
  /** Who it is from the start, for a protocol that authorises channel by channel instead of by token (Pusher). */
  identity?: Identity;
}

const HISTORY_PAGE = 1000;
/** The longest a reply waits for its presence to be written (see settled()). */
const PRESENCE_WAIT_MS = 2000;
/** The longest a presence subscribe waits for its watch to be written before it fails (ERR_UNAVAILABLE): it cannot go on without. */
const WATCH_WAIT_MS = 10_000;
/** What a refused frame costs of the allowance beyond the 1 every frame costs: a client sending what it should not is cut off sooner. */
export const REFUSED_EXTRA = 4;
const MAX_QUEUED_OPS = 256;
/** Token expiries further off than this are armed later, by the sweep. */
const EXPIRY_HORIZON_MS = 60_000;
const encoder = new TextEncoder();

/** Runs client ops against the hub and the message log. */
export class Gateway {
  readonly #o: GatewayOptions;
  readonly #policy: SessionPolicy;
  readonly #expiryHorizonMs: number;
  /** How often armDueExpiries() must run: well inside the horizon, so no expiry is armed late. */
  readonly expirySweepMs: number;
  #counter = 0;
  /** Client work starts through it: a herd takes a slice of each turn of the event loop, the server API the rest. */
  readonly #gate = new TurnGate();

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#expiryHorizonMs = options.expiryHorizonMs ?? EXPIRY_HORIZON_MS;
    this.expirySweepMs = this.#expiryHorizonMs / 3;
    this.#policy = {
      maxBuffered: options.maxBuffered,
      onDelivered: (s, message) => options.log.advanceCursor(s.uid!, message.channel, message.id),
    };
  }

  /** Creates and registers the session of a new connection. */
  open(sink: SessionSink, options: OpenOptions): Session {
    const session = new Session(sink, { id: options.id ?? this.#newId(), format: options.format, transport: options.transport, ackMode: options.ackMode, address: options.address }, this.#policy);
    this.#o.hub.attach(session);
    if (options.identity === undefined) session.setTimer('auth', this.#o.authTimeoutMs);
    else session.identity = options.identity;
    return session;
  }

  // <instance>.<counter><random>: unique in the cluster, and not guessable from another id.
  #newId(): string {
    const random = crypto.getRandomValues(new Uint32Array(2));
    return `${this.#o.instance}.${(++this.#counter).toString(36)}${random[0]!.toString(36)}${random[1]!.toString(36)}`;
  }

  /** Which instance (and region) a client is connected to: in the auth reply and the SSE session event. */
  get whereabouts(): { instance: string; region?: string } {
    return this.#o.region === undefined ? { instance: this.#o.instance } : { instance: this.#o.instance, region: this.#o.region };
  }

  /** The session with this connection id, if it lives on this instance. */
  session(id: string): Session | undefined {
    return this.#o.hub.session(id);
  }

  /** An error reply, counted: every error a client is told goes through here. */
  fail(op: string, rid: unknown, error: MeshError): Reply {
    this.#o.onErrorReply?.(error.code);
    return failed(op, rid, error);
  }

  /** Reads one text frame from outside (see edge-input.ts). */
  decode(text: string): unknown {
    return decodeFrame(text, this.#o.maxJsonDepth);
  }

  /**
   * Charges a frame from the client to its connection's allowance (MESH_MAX_FRAMES_PER_SECOND, a burst of
   * twice that); past it the connection is closed with 4029 and false returned. Every dialect calls this
   * for every frame, before any work: a client flooding at full speed costs the others little.
   */
  admit(session: Session, cost = 1): boolean {
    const rate = this.#o.maxFramesPerSecond;
    if (rate <= 0 || session.closed) return !session.closed;
    const bucket = (session.frames ??= new TokenBucket(rate, 2 * rate));
    if (bucket.take(cost, performance.now())) return true;
    this.#o.onLimit?.('frames');
    session.close(CloseCode.FLOOD, 'too many frames a second');
    return false;
  }

  /** Resolves when this turn of the event loop has room for more client work: a new connection waits here (see TurnGate). */
  turn(): Promise<void> {
    return this.#gate.pass();
  }

  /** Runs one text frame from a client and writes its reply to the session. */
  receive(session: Session, text: string): void {
    if (!this.admit(session)) return;
    let frame: unknown;
    try {
      frame = this.decode(text);
    } catch (err) {
      session.reply(this.fail('error', undefined, asMeshError(err)));
      this.admit(session, REFUSED_EXTRA);
      return;
    }
    this.#handle(session, frame).then((reply) => session.reply(reply)).catch(this.report);
  }

  /** Reports a failure no client caused and none is told of (a bug): logged, never thrown on. */
  report = (err: unknown): void => {
    this.#o.onError?.(err);
  };

  /** Runs one decoded frame (of an SSE uplink POST) behind the session's earlier ones; resolves with its reply. */
  handle(session: Session, frame: unknown): Promise<Reply> {
    if (!this.admit(session)) return Promise.resolve(this.fail(replyOp(frame), ridOf(frame), new MeshError('ERR_FLOOD', 'too many frames a second: the stream is closed')));
    return this.#handle(session, frame);
  }

  #handle(session: Session, frame: unknown): Promise<Reply> {
    let command: Command;
    try {
      command = parseCommand(frame);
    } catch (err) {
      this.admit(session, REFUSED_EXTRA);
      return Promise.resolve(this.fail(replyOp(frame), ridOf(frame), asMeshError(err)));
    }
    return this.run(session, command);
  }

  /** Queues a validated command behind the session's earlier ones. */
  run(session: Session, command: Command): Promise<Reply> {
    const name = replyName(command);
    return this.serially(
      session,
      () => this.#execute(session, command),
      (err) => this.fail(name, command.rid, err),
    );
  }

  /**
   * Runs `work` for a session behind its earlier ops, one at a time, in order: how every dialect drives a
   * connection (pgmesh frames, Pusher's). A failure becomes `failed(err)`'s answer; a closed session, or one
   * with 256 ops waiting (closed with 4029), gets that answer without running anything. In a storm, ops
   * start in slices of each turn of the event loop (see TurnGate).
   */
  serially<T>(session: Session, work: () => Promise<T>, failed: (err: MeshError) => T): Promise<T> {
    if (session.closed) return Promise.resolve(failed(new MeshError('ERR_CLOSED')));
    if (session.queued >= MAX_QUEUED_OPS) {
      session.close(CloseCode.FLOOD, 'too many ops in flight');
      return Promise.resolve(failed(new MeshError('ERR_FLOOD')));
    }
    session.queued++;
    const done = session.queue.then(async (): Promise<T> => {
      try {
        await this.#gate.pass();
        return await work();
      } catch (err) {
        const e = asMeshError(err);
        if (e.code === 'ERR_INTERNAL') this.#o.onError?.(err);
        return failed(e);
      } finally {
        // The last op out leaves the queue as it found it: an idle connection holds no promise of its own.
        if (--session.queued === 0) session.queue = NOTHING_QUEUED;
      }
    });
    // The queue keeps the order, not the answer: an idle connection holds no old answer.
    session.queue = done.then(settled);
    return done;
  }

  /** Tears a session down after its transport closed. */
  close(session: Session): void {
    session.ended();
    this.#o.hub.detach(session);
    this.#o.observer?.closed(session);
    // A failed write stays queued in the batch and goes with the next flush.
    this.#o.log.flushCursors().catch((err) => this.#o.onError?.(err));
  }

  /** Applies a server-API command to the sessions it targets on this instance (see commands.ts). */
  command(command: MeshCommand): void {
    if (command.op === 'ungroup') {
      for (const session of [...this.#o.hub.sessions()]) {
        if (session.isSubscribed(command.channel)) this.#leave(session, [command.channel]);
      }
      return;
    }
    for (const session of this.#targets(command.target)) {
      if (command.op === 'close') session.close(CloseCode.KICKED, command.reason);
      else if (command.op === 'subscribe') this.#join(session, command.channels);
      else this.#leave(session, command.channels.map((name) => resolveChannel(name, session.uid).channel));
    }
  }

  #targets(target: CommandTarget): Session[] {
    if ('uid' in target) return this.#o.hub.sessionsOf(target.uid).filter((s) => !s.closed);
    const session = this.#o.hub.session(target.connection);
    return session && !session.closed && session.identity !== null ? [session] : [];
  }

  // A server-side subscribe goes live at the command's place in the feed: no replay, no permission check.
  #join(session: Session, names: readonly string[]): void {
    const joined: string[] = [];
    for (const given of names) {
      const { channel, name } = resolveChannel(given, session.uid);
      if (session.isSubscribed(channel)) continue;
      this.#o.hub.subscribe(session, channel, name, 'plain');
      this.#o.hub.goLive(session, channel, this.#o.log.position);
      joined.push(channel);
    }
    if (joined.length > 0) this.#o.observer?.subscribed(session, joined);
  }

  #leave(session: Session, channels: readonly string[]): void {
    const left = channels.filter((c) => session.isSubscribed(c));
    for (const channel of left) this.#o.hub.unsubscribe(session, channel);
    this.#unwatch(session, left);
    if (left.length > 0) this.#o.observer?.unsubscribed(session, left);
  }

  async #execute(session: Session, command: Command): Promise<Reply> {
    switch (command.op) {
      case 'ping':
        return { kind: 'pong', rid: command.rid };
      case 'auth':
        return this.#auth(session, command.token, command.rid);
      case 'refresh':
        return this.#refresh(session, command.token, command.rid);
      case 'subscribe':
        return this.#subscribe(session, command);
      case 'unsubscribe':
        return this.#unsubscribe(session, command);
      case 'publish':
        return this.#publish(session, command);
      case 'ack':
        return this.#ack(session, command);
      case 'rpc':
        return this.#rpc(session, command);
    }
  }

  async #auth(session: Session, token: string, rid: unknown): Promise<Reply> {
    const identity = await this.#o.auth.verify(token);
    stillOpen(session);
    const previous = session.identity;
    // A limit on users: pgmesh's own connections (every operator's console is '$console') are no one's.
    const max = isOwnConnection(identity.uid) ? 0 : this.#o.maxConnectionsPerUser;
    if (max > 0 && previous?.uid !== identity.uid && this.#o.hub.sessionsOf(identity.uid).filter((s) => !s.closed && s !== session).length >= max) {
      this.#o.onLimit?.('per_user');
      // After the reply, which says why: the client backs off rather than retrying at once.
      setTimeout(() => session.close(CloseCode.LIMIT, 'too many connections for this user'), 0);
      throw new MeshError('ERR_LIMIT', `user ${identity.uid.slice(0, 64)} already holds ${max} connections on this instance`);
    }
    if (previous && previous.uid !== identity.uid) {
      // A different user on the same connection starts from nothing (its watches of joins and leaves included).
      const channels = [...session.channels()];
      for (const channel of channels) this.#o.hub.unsubscribe(session, channel);
      this.#o.hub.unbindUser(session, previous.uid);
      this.#o.observer?.unsubscribed(session, channels);
    }
    session.identity = identity;
    session.setTimer('auth', null);
    this.#o.hub.bindUser(session, identity.uid);
    if (previous === null) this.#o.hub.joinAll(session);
    this.#armExpiry(session);
    if (previous?.uid !== identity.uid) {
      this.#o.observer?.authenticated(session);
      await this.settled();
      stillOpen(session);
    }
    return ok('auth', rid, { uid: identity.uid, connection: session.id, ...this.whereabouts });
  }

  async #refresh(session: Session, token: string, rid: unknown): Promise<Reply> {
    const current = need(session);
    const identity = await this.#o.auth.verify(token);
    if (identity.uid !== current.uid) throw new MeshError('ERR_FORBIDDEN', 'refresh token is for another user');
    session.identity = identity;
    this.#armExpiry(session);
    return ok('refresh', rid, { uid: identity.uid });
  }

  // A token expiring soon gets a timer; the rest are left to armDueExpiries(), so a long-lived
  // connection holds no timer of its own (an idle SSE stream costs about 150 bytes less).
  #armExpiry(session: Session): void {
    const expiresAt = session.identity?.expiresAt;
    const delay = expiresAt == null ? null : Math.max(0, expiresAt - Date.now());
    session.setTimer('expiry', delay === null || delay > this.#expiryHorizonMs ? null : delay);
  }

  /** Arms the expiry timer of every session whose token expires within the horizon; run it every `expirySweepMs`. */
  armDueExpiries(): void {
    const now = Date.now();
    for (const session of this.#o.hub.sessions()) {
      const expiresAt = session.identity?.expiresAt;
      if (expiresAt == null || session.expiryArmed || expiresAt - now > this.#expiryHorizonMs) continue;
      session.setTimer('expiry', Math.max(0, expiresAt - now));
    }
  }

  async #subscribe(session: Session, command: Extract<Command, { op: 'subscribe' }>): Promise<Reply> {
    const identity = need(session);
    const uid = identity.uid;
    const refs = new Map(command.channels.map((name) => resolveChannel(name, uid)).map((ref) => [ref.channel, ref]));
    for (const { channel } of refs.values()) {
      if (!canSubscribe(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to subscribe to ${channel}`);
    }
    // A position beyond the database's head is not one this store ever gave out (a reset
    // database, a typo): replaying from it would silently drop every message up to it.
    let since = command.since;
    let clamped: { since: number; to: number } | undefined;
    if (since !== undefined && since > this.#o.log.position) {
      const head = await this.#o.log.head();
      stillOpen(session);
      if (since > head) {
        clamped = { since, to: head };
        since = head;
      }
    }
    if (command.presence && this.#o.members === undefined) throw new MeshError('ERR_BAD_ARGS', 'presence is not available on this server');
    // Its watch could not be written (an open console is in no presence): the list would be promised and not kept.
    if (command.presence && isOwnConnection(uid)) throw new MeshError('ERR_FORBIDDEN', "pgmesh's own connections (an open console) are not in presence: read members with the server API");
    // Where to replay from: the client's position, else the server-side cursor of the user's own channel.
    const plans: { channel: string; name: string; after: number | undefined; kind: SubscriptionKind }[] = [];
    for (const { channel, name } of refs.values()) {
      if (session.isSubscribed(channel)) continue;
      const own = isOwnChannel(channel, uid);
      const after = since ?? (own ? ((await this.#o.log.cursor(uid, channel)) ?? 0) : undefined);
      stillOpen(session);
      plans.push({ channel, name, after, kind: own && !session.ackMode ? 'tracked' : 'plain' });
    }
    this.#checkRoom(session, plans.length);
    // Presence: the members as of an id, then every join and leave after that id (folded into the list up to the reply).
    const members: Record<string, string[]> = {};
    const lists = new Map<string, { name: string; members: Map<string, string | null> }>();
    const watching = command.presence ? [...refs.values()].map((r) => presenceChannel(r.channel)).filter((c) => !session.isSubscribed(c)) : [];
    try {
      // Written before the lists are read: a channel's joins and leaves are written only while someone watches.
      await this.#watch(session, watching);
      if (command.presence) {
        for (const { channel, name } of refs.values()) {
          const { uids, at } = await this.#o.members!.members(channel);
          stillOpen(session);
          members[name] = uids;
          if (session.isSubscribed(presenceChannel(channel))) continue;
          plans.push({ channel: presenceChannel(channel), name, after: at, kind: 'presence' });
          lists.set(presenceChannel(channel), { name, members: new Map(uids.map((uid) => [uid, null])) });
        }
      }
    } catch (err) {
      this.#stopWatching(session, watching);
      throw err;
    }
    // Every message after this id reaches the new subscriptions live: a client that saw
    // nothing yet can still resume from here.
    const position = this.#o.log.position;
    for (const { channel, name, after, kind } of plans) this.#o.hub.subscribe(session, channel, name, kind, after);
    const joined = plans.filter((p) => p.kind !== 'presence').map((p) => p.channel);
    let told = false;
    try {
      const resumed = plans.filter((p) => p.kind !== 'presence' && p.after !== undefined && p.after > 0);
      if (resumed.length > 0) {
        const expiredUpTo = await this.#o.log.expiredUpTo();
        for (const { name, after } of resumed) {
          if (after! < expiredUpTo) session.notice('expired', { channel: name, since: after, expiredUpTo });
        }
      }
      for (const { channel, after } of plans) if (!lists.has(channel) && after !== undefined) await this.#replay(session, channel, after);
      // Closed while the history was read: what was begun is undone, and presence never hears of it.
      stillOpen(session);
      if (joined.length > 0) {
        // Written before the reply (read-your-writes), and before the member lists are settled:
        // the join events meanwhile, this one's included, are folded into them, none sent ahead.
        this.#o.observer?.subscribed(session, joined);
        told = true;
        await this.settled();
      }
      for (const [channel, { members: list }] of lists) await this.#catchUpMembers(session, channel, plans.find((p) => p.channel === channel)!.after!, list);
      for (const { name, members: list } of lists.values()) members[name] = [...list.keys()].sort();
      for (const { channel } of plans) this.#o.hub.goLive(session, channel, this.#o.log.position);
    } catch (err) {
      for (const { channel } of plans) this.#o.hub.unsubscribe(session, channel);
      if (told && !session.closed) this.#o.observer?.unsubscribed(session, joined);
      this.#stopWatching(session, watching);
      throw err;
    }
    const names = [...refs.values()].map((r) => r.name);
    return ok(replyName(command), command.rid, { channels: names, position, ...(command.presence ? { members } : {}), ...(clamped ? { clamped } : {}) });
  }

  /**
   * For a protocol that authorises channels itself (Pusher's signed subscriptions): subscribes
   * `session` to `channel` (named `name` to it) as a presence member saying `info` about itself,
   * and to the channel's join and leave events from the member list it resolves with on.
   */
  async joinPresence(session: Session, channel: string, name: string, info: string | undefined): Promise<{ uids: string[]; info: Record<string, string | null> }> {
    if (this.#o.members === undefined) throw new MeshError('ERR_BAD_ARGS', 'presence is not available on this server');
    if (!session.isSubscribed(channel)) this.#checkRoom(session, 1);
    const members = await this.#o.members.members(channel);
    stillOpen(session);
    const events = presenceChannel(channel);
    const list = new Map<string, string | null>(members.uids.map((uid) => [uid, members.info[uid] ?? null]));
    const fresh = !session.isSubscribed(events);
    if (!session.isSubscribed(channel)) this.#o.hub.subscribe(session, channel, name, 'plain');
    if (fresh) this.#o.hub.subscribe(session, events, name, 'presence', members.at);
    // Written before the answer (read-your-writes), and before the member list is settled: the
    // join and leave events meanwhile are folded into it, none sent ahead of it.
    this.#o.observer?.subscribed(session, [channel], info);
    try {
      await this.settled();
      if (fresh) await this.#catchUpMembers(session, events, members.at, list);
      stillOpen(session);
    } catch (err) {
      // Closed (or the store failed) on the way: nothing of it stays, in this instance or in presence.
      this.#o.hub.unsubscribe(session, channel);
      this.#o.hub.unsubscribe(session, events);
      if (!session.closed) this.#o.observer?.unsubscribed(session, [channel]);
      throw err;
    }
    this.#o.hub.goLive(session, channel, this.#o.log.position);
    const uids = [...list.keys()].sort();
    return { uids, info: Object.fromEntries(uids.map((uid) => [uid, list.get(uid) ?? null])) };
  }

  /**
   * For a protocol that authorises its own subscribers (Mercure): subscribes `session` to `channel`,
   * replaying what came after `after` first (none: live from now), and writes it to presence with `info`.
   */
  async follow(session: Session, channel: string, after: number | undefined, info?: string): Promise<void> {
    this.#o.hub.subscribe(session, channel, channel, 'plain', after);
    try {
      if (after !== undefined) await this.#replay(session, channel, after);
      stillOpen(session);
    } catch (err) {
      this.#o.hub.unsubscribe(session, channel);
      throw err;
    }
    this.#o.hub.goLive(session, channel, this.#o.log.position);
    this.#o.observer?.subscribed(session, [channel], info);
  }

  /** For a protocol whose clients publish in a form of its own (Pusher's client events): publishes for `session`, if it is still open. */
  async publishFor(session: Session, messages: NewMessage[]): Promise<number[]> {
    stillOpen(session);
    return this.#o.log.publish(messages);
  }

  /** For a protocol that authorises channels itself: subscribes `session` to `channel` (named `name` to it), live, and writes it to the cluster's presence. */
  joinChannel(session: Session, channel: string, name: string): void {
    if (session.isSubscribed(channel)) return;
    this.#checkRoom(session, 1);
    this.#o.hub.subscribe(session, channel, name, 'plain');
    this.#o.hub.goLive(session, channel, this.#o.log.position);
    this.#o.observer?.subscribed(session, [channel]);
  }

  /**
   * Resolves once the presence this instance was told of so far is visible to every instance's
   * reads: a reply sent after it (auth, subscribe) is read-your-writes for the backend the client
   * calls next. Past PRESENCE_WAIT_MS (the database is slow or away) it resolves anyway: the
   * change is written when the database answers, and the client is not held hostage to it.
   */
  settled(): Promise<void> {
    const written = this.#o.presenceWritten?.();
    if (written === undefined) return NOTHING_QUEUED as Promise<void>;
    // One flush releases thousands in a storm: what each then does (reply, replay, go live) starts through the gate.
    return finishedWithin(written, PRESENCE_WAIT_MS).then(() => this.#gate.pass());
  }

  /** Ends what joinChannel() or joinPresence() began. */
  leaveChannel(session: Session, channel: string): void {
    if (!session.isSubscribed(channel)) return;
    this.#o.hub.unsubscribe(session, channel);
    this.#unwatch(session, [channel]);
    this.#o.observer?.unsubscribed(session, [channel]);
  }

  /**
   * Gives a session (opened with an identity, or given one before) the identity it speaks for
   * from now on: its connection is written to the cluster's presence under that uid, and
   * commands for that uid (close, say) reach it.
   */
  identify(session: Session, identity: Identity): void {
    if (session.uid) this.#o.hub.unbindUser(session, session.uid);
    session.identity = identity;
    this.#o.hub.bindUser(session, identity.uid);
    this.#o.observer?.authenticated(session);
  }

  /**
   * Writes that `session` watches the join and leave events `events` (`$presence:<channel>`), and
   * waits until it is written: from then on every instance's presence batches write those events.
   * Without the wait, a join written meanwhile would be in neither the member list nor the events.
   */
  async #watch(session: Session, events: readonly string[]): Promise<void> {
    if (events.length === 0) return;
    this.#o.observer?.subscribed(session, events);
    const written = this.#o.presenceWritten?.();
    if (written === undefined) return;
    if (!(await finishedWithin(written, WATCH_WAIT_MS))) throw new MeshError('ERR_UNAVAILABLE', 'presence not written in time: try again');
    await this.#gate.pass();
    stillOpen(session);
  }

  /** Takes back what #watch() wrote (its subscription in this instance was never made, or is gone). */
  #stopWatching(session: Session, events: readonly string[]): void {
    if (events.length > 0 && !session.closed) this.#o.observer?.unsubscribed(session, events);
  }

  /** Ends `session`'s watch of the joins and leaves of those of `channels` it watches. */
  #unwatch(session: Session, channels: readonly string[]): void {
    const events = channels.map(presenceChannel).filter((c) => session.isSubscribed(c));
    for (const c of events) this.#o.hub.unsubscribe(session, c);
    this.#stopWatching(session, events);
  }

  /** Reads a presence channel's events after `after` into `members` (see Session.foldPresence); throws ERR_CLOSED if the session closed meanwhile. */
  async #catchUpMembers(session: Session, events: string, after: number, members: Map<string, string | null>): Promise<void> {
    for (;;) {
      const page = await this.#o.log.history(events, after, HISTORY_PAGE);
      stillOpen(session);
      const last = page.length < HISTORY_PAGE;
      session.foldPresence(events, page, members, last);
      if (last) return;
      after = page[page.length - 1]!.id;
    }
  }

  async #replay(session: Session, channel: string, after: number): Promise<void> {
    for (;;) {
      const page = await this.#o.log.history(channel, after, HISTORY_PAGE);
      // Reads answered together (a storm's, batched) would write all their replays in one turn.
      await this.#gate.pass();
      if (page.length < HISTORY_PAGE || session.closed) return session.finishReplay(channel, page);
      session.replay(channel, page);
      after = page[page.length - 1]!.id;
    }
  }

  async #unsubscribe(session: Session, command: Extract<Command, { op: 'unsubscribe' }>): Promise<Reply> {
    const uid = need(session).uid;
    const refs = command.channels.map((name) => resolveChannel(name, uid));
    const left = refs.filter((r) => session.isSubscribed(r.channel)).map((r) => r.channel);
    for (const channel of left) this.#o.hub.unsubscribe(session, channel);
    this.#unwatch(session, refs.map((r) => r.channel));
    if (left.length > 0) this.#o.observer?.unsubscribed(session, left);
    return ok('unsubscribe', command.rid, { channels: refs.map((r) => r.name) });
  }

  async #publish(session: Session, command: Extract<Command, { op: 'publish' }>): Promise<Reply> {
    const identity = need(session);
    const { channel } = resolveChannel(command.channel, identity.uid);
    if (!canPublish(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to publish to ${channel}`);
    const data = JSON.stringify(command.data);
    if (data.length > this.#o.maxMessage || encoder.encode(data).length > this.#o.maxMessage) {
      throw new MeshError('ERR_TOO_LARGE', `message larger than ${this.#o.maxMessage} bytes`);
    }
    const [id] = await this.#o.log.publish([{ channel, data, sender: identity.uid }]);
    return ok(command.via, command.rid, { id, channel });
  }

  // Refuses `adding` more channels past MESH_MAX_SUBSCRIPTIONS: each costs presence rows, and webhooks, cluster-wide.
  #checkRoom(session: Session, adding: number): void {
    const max = this.#o.maxSubscriptions;
    if (adding === 0 || session.channelsHeld + adding <= max) return;
    this.#o.onLimit?.('subscriptions');
    throw new MeshError('ERR_LIMIT', `at most ${max} subscriptions per connection (MESH_MAX_SUBSCRIPTIONS)`);
  }

  async #rpc(session: Session, command: Extract<Command, { op: 'rpc' }>): Promise<Reply> {
    const identity = need(session);
    // pgmesh's own connections (an open console: uid $console) are nobody your backend knows.
    if (isOwnConnection(identity.uid)) throw new MeshError('ERR_FORBIDDEN', 'this connection is not a user: it calls no backend');
    if (this.#o.backend === undefined) throw new MeshError('ERR_RPC_UNAVAILABLE', 'this server has no backend for rpc (MESH_RPC_URL)');
    const answer = await this.#o.backend.rpc({ method: command.method, data: command.data ?? null, uid: identity.uid, connection: session.id });
    const tooBig = answer.publish.find((m) => m.data.length > this.#o.maxMessage || encoder.encode(m.data).length > this.#o.maxMessage);
    if (tooBig) throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend answered ${command.method} with a message on ${tooBig.channel} larger than ${this.#o.maxMessage} bytes`);
    // The backend speaks for the caller: its messages go out as the caller's, before the reply.
    if (answer.publish.length > 0) await this.#o.log.publish(answer.publish.map((m) => ({ channel: m.channel, data: m.data, sender: identity.uid })));
    return ok('rpc', command.rid, { result: answer.result });
  }

  async #ack(session: Session, command: Extract<Command, { op: 'ack' }>): Promise<Reply> {
    const identity = need(session);
    const channel = command.channel === undefined ? userChannel(identity.uid) : resolveChannel(command.channel, identity.uid).channel;
    if (!canSubscribe(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to ack on ${channel}`);
    // A cursor row is kept for good: only channels this connection listens on (and the user's own) get one.
    if (channel !== userChannel(identity.uid) && !session.isSubscribed(channel)) throw new MeshError('ERR_BAD_ARGS', `ack: not subscribed to ${channel}`);
    this.#o.log.advanceCursor(identity.uid, channel, command.id);
    return ok('ack', command.rid, { id: command.id });
  }
}

function settled(): void {}

/** Throws ERR_CLOSED once the session's transport has closed: after an await, nothing more is begun for a connection that is gone. */
function stillOpen(session: Session): void {
  if (session.closed) throw new MeshError('ERR_CLOSED');
}

function need(session: Session) {
  if (session.identity === null) throw new MeshError('ERR_NOT_AUTH');
  return session.identity;
}

function replyName(command: Command): string {
  return command.op === 'publish' ? command.via : command.op;
}

