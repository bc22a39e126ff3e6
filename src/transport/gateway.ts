/**
 * The ops every transport speaks. A transport opens a session, hands it text
 * frames (WebSocket) or decoded frames (SSE POST uplink), and closes it; the
 * gateway authenticates, authorises, subscribes with replay, publishes through
 * the store and replies. Ops of one session run one at a time, in order.
 */
import type { Authenticator } from '../core/auth.ts';
import { canPublish, canSubscribe, isOwnChannel, resolveChannel, userChannel } from '../core/channels.ts';
import { MeshError, asMeshError } from '../core/errors.ts';
import type { Hub } from '../core/hub.ts';
import type { DeliveryFormat } from '../core/message.ts';
import { type Command, decodeFrame, errorReply, okReply, parseCommand, replyOp } from '../core/protocol.ts';
import { CloseCode, Session, type SessionSink } from '../core/session.ts';
import type { Store } from '../store/store.ts';

export interface GatewayOptions {
  hub: Hub;
  store: Store;
  auth: Authenticator;
  /** Largest message data, in bytes. */
  maxMessage: number;
  /** Unread bytes past which a client is cut off. */
  maxBuffered: number;
  onError?: (err: unknown) => void;
}

export interface OpenOptions {
  format: DeliveryFormat;
  transport: 'websocket' | 'sse';
  /** The client acks explicitly: its cursors move on `ack` only, not on delivery. */
  ackMode: boolean;
}

type Reply = (frame: string) => void;

const HISTORY_PAGE = 1000;
const MAX_QUEUED_OPS = 256;
const MAX_TIMER_MS = 2_147_483_647;
const encoder = new TextEncoder();

interface SessionState {
  ackMode: boolean;
  queue: Promise<void>;
  queued: number;
  expiry: ReturnType<typeof setTimeout> | null;
}

/** Runs client ops against the hub and the store. */
export class Gateway {
  readonly #o: GatewayOptions;
  readonly #state = new WeakMap<Session, SessionState>();

  constructor(options: GatewayOptions) {
    this.#o = options;
  }

  /** Creates and registers the session of a new connection. */
  open(sink: SessionSink, options: OpenOptions): Session {
    const session = new Session(sink, {
      format: options.format,
      transport: options.transport,
      maxBuffered: this.#o.maxBuffered,
      onDelivered: (s, message) => this.#o.store.advanceCursor(s.uid!, message.channel, message.id),
    });
    this.#state.set(session, { ackMode: options.ackMode, queue: Promise.resolve(), queued: 0, expiry: null });
    this.#o.hub.attach(session);
    return session;
  }

  /** Runs one text frame from a client; replies go to the session. */
  receive(session: Session, text: string): void {
    let frame: unknown;
    try {
      frame = decodeFrame(text);
    } catch (err) {
      session.send(errorReply('error', undefined, asMeshError(err)));
      return;
    }
    void this.run(session, frame, (reply) => session.send(reply));
  }

  /** Runs one decoded frame; resolves once its replies are out. */
  run(session: Session, frame: unknown, reply: Reply): Promise<void> {
    let command: Command;
    try {
      command = parseCommand(frame);
    } catch (err) {
      reply(errorReply(replyOp(frame), ridOf(frame), asMeshError(err)));
      return Promise.resolve();
    }
    return this.enqueue(session, command, reply);
  }

  /** Queues a command behind the session's earlier ones. */
  enqueue(session: Session, command: Command, reply: Reply): Promise<void> {
    const state = this.#state.get(session);
    if (!state || session.closed) return Promise.resolve();
    if (state.queued >= MAX_QUEUED_OPS) {
      session.close(CloseCode.FLOOD, 'too many ops in flight');
      return Promise.resolve();
    }
    state.queued++;
    state.queue = state.queue.then(async () => {
      try {
        await this.#execute(session, command, reply);
      } catch (err) {
        const e = asMeshError(err);
        if (e.code === 'ERR_INTERNAL') this.#o.onError?.(err);
        reply(errorReply(replyName(command), command.rid, e));
      } finally {
        state.queued--;
      }
    });
    return state.queue;
  }

  /** Authenticates a session from a token given at connect (`?token=`). */
  authenticate(session: Session, token: string, reply: Reply): Promise<void> {
    return this.enqueue(session, { op: 'auth', token }, reply);
  }

  /** Tears a session down after its transport closed. */
  close(session: Session): void {
    session.closed = true;
    const state = this.#state.get(session);
    if (state?.expiry) clearTimeout(state.expiry);
    this.#o.hub.detach(session);
    void this.#o.store.flushCursors().catch(() => {});
  }

  async #execute(session: Session, command: Command, reply: Reply): Promise<void> {
    switch (command.op) {
      case 'ping':
        return reply(JSON.stringify({ op: 'pong', ...(command.rid === undefined ? {} : { rid: command.rid }) }));
      case 'auth':
        return this.#auth(session, command.token, command.rid, reply);
      case 'refresh':
        return this.#refresh(session, command.token, command.rid, reply);
      case 'subscribe':
        return this.#subscribe(session, command, reply);
      case 'unsubscribe':
        return this.#unsubscribe(session, command, reply);
      case 'publish':
        return this.#publish(session, command, reply);
      case 'ack':
        return this.#ack(session, command, reply);
    }
  }

  async #auth(session: Session, token: string, rid: unknown, reply: Reply): Promise<void> {
    const identity = await this.#o.auth.verify(token);
    const previous = session.identity;
    if (previous && previous.uid !== identity.uid) {
      // A different user on the same connection starts from nothing.
      for (const channel of [...session.channels()]) this.#o.hub.unsubscribe(session, channel);
      this.#o.hub.unbindUser(session, previous.uid);
    }
    session.identity = identity;
    this.#o.hub.bindUser(session, identity.uid);
    this.#armExpiry(session);
    reply(okReply('auth', rid, { uid: identity.uid }));
  }

  async #refresh(session: Session, token: string, rid: unknown, reply: Reply): Promise<void> {
    const current = need(session);
    const identity = await this.#o.auth.verify(token);
    if (identity.uid !== current.uid) throw new MeshError('ERR_FORBIDDEN', 'refresh token is for another user');
    session.identity = identity;
    this.#armExpiry(session);
    reply(okReply('refresh', rid, { uid: identity.uid }));
  }

  #armExpiry(session: Session): void {
    const state = this.#state.get(session)!;
    if (state.expiry) clearTimeout(state.expiry);
    state.expiry = null;
    const expiresAt = session.identity?.expiresAt;
    if (expiresAt == null) return;
    const delay = Math.max(0, expiresAt - Date.now());
    if (delay > MAX_TIMER_MS) return;
    state.expiry = setTimeout(() => session.close(CloseCode.TOKEN_EXPIRED, 'token expired'), delay);
  }

  async #subscribe(session: Session, command: Extract<Command, { op: 'subscribe' }>, reply: Reply): Promise<void> {
    const identity = need(session);
    const uid = identity.uid;
    const targets = [...new Set(command.channels.map((name) => resolveChannel(name, uid)))];
    for (const channel of targets) {
      if (!canSubscribe(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to subscribe to ${channel}`);
    }
    const state = this.#state.get(session)!;
    // Where to replay from: the client's position, else the server-side cursor of the user's own channel.
    const plans: { channel: string; after: number | undefined; own: boolean }[] = [];
    for (const channel of targets) {
      if (session.isSubscribed(channel)) continue;
      const own = isOwnChannel(channel, uid);
      const after = command.since ?? (own ? ((await this.#o.store.cursor(uid, channel)) ?? 0) : undefined);
      plans.push({ channel, after, own });
    }
    // Every message after this id reaches the new subscriptions live: a client that saw
    // nothing yet can still resume from here.
    const position = this.#o.store.position;
    for (const { channel, after, own } of plans) this.#o.hub.subscribe(session, channel, own && !state.ackMode, after);
    try {
      const resumed = plans.filter((p) => p.after !== undefined && p.after > 0);
      if (resumed.length > 0) {
        const expiredUpTo = await this.#o.store.expiredUpTo();
        for (const { channel, after } of resumed) {
          if (after! < expiredUpTo) session.notice('expired', { channel, since: after, expiredUpTo });
        }
      }
      for (const { channel, after } of plans) if (after !== undefined) await this.#replay(session, channel, after);
      for (const { channel } of plans) this.#o.hub.goLive(session, channel);
    } catch (err) {
      for (const { channel } of plans) this.#o.hub.unsubscribe(session, channel);
      throw err;
    }
    reply(okReply(replyName(command), command.rid, { channels: targets, position }));
  }

  async #replay(session: Session, channel: string, after: number): Promise<void> {
    for (;;) {
      const page = await this.#o.store.history(channel, after, HISTORY_PAGE);
      if (page.length < HISTORY_PAGE || session.closed) return session.finishReplay(channel, page);
      session.replay(channel, page);
      after = page[page.length - 1]!.id;
    }
  }

  async #unsubscribe(session: Session, command: Extract<Command, { op: 'unsubscribe' }>, reply: Reply): Promise<void> {
    const uid = need(session).uid;
    const targets = command.channels.map((name) => resolveChannel(name, uid));
    for (const channel of targets) this.#o.hub.unsubscribe(session, channel);
    reply(okReply('unsubscribe', command.rid, { channels: targets }));
  }

  async #publish(session: Session, command: Extract<Command, { op: 'publish' }>, reply: Reply): Promise<void> {
    const identity = need(session);
    const channel = resolveChannel(command.channel, identity.uid);
    if (!canPublish(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to publish to ${channel}`);
    const data = JSON.stringify(command.data);
    if (data.length > this.#o.maxMessage || encoder.encode(data).length > this.#o.maxMessage) {
      throw new MeshError('ERR_TOO_LARGE', `message larger than ${this.#o.maxMessage} bytes`);
    }
    const [id] = await this.#o.store.publish([{ channel, data, sender: identity.uid }]);
    reply(okReply(command.via, command.rid, { id, channel }));
  }

  async #ack(session: Session, command: Extract<Command, { op: 'ack' }>, reply: Reply): Promise<void> {
    const identity = need(session);
    const channel = command.channel === undefined ? userChannel(identity.uid) : resolveChannel(command.channel, identity.uid);
    if (!canSubscribe(identity, channel)) throw new MeshError('ERR_FORBIDDEN', `not allowed to ack on ${channel}`);
    this.#o.store.advanceCursor(identity.uid, channel, command.id);
    reply(okReply('ack', command.rid, { id: command.id }));
  }
}

function need(session: Session) {
  if (session.identity === null) throw new MeshError('ERR_NOT_AUTH');
  return session.identity;
}

function replyName(command: Command): string {
  return command.op === 'publish' ? command.via : command.op;
}

function ridOf(frame: unknown): unknown {
  return typeof frame === 'object' && frame !== null ? (frame as { rid?: unknown }).rid : undefined;
}
