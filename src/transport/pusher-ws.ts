/**
 * The Pusher Channels socket, /app/{key}: pusher-js and Laravel Echo connect
 * here unchanged. Each socket is a pgmesh session (so the hub fans out to it,
 * the outbox backs it, the server API can close it) whose id is its socket_id;
 * its frames are Pusher's. Public channels are open to all; `private-` ones need
 * the signature the app's auth endpoint returns; a `client-` event goes to the
 * channel's other subscribers, through the outbox like any message. A
 * `presence-` channel's members are the cluster's presence (pgmesh's own
 * tables and join/leave events), each member written as `$pusher:<app>:<user_id>`
 * with its user_info, so its member list and member_added/removed are right
 * across instances and after an instance dies. A socket that signs in
 * (pusher:signin) is that user from then on, and may subscribe to its own
 * `#server-to-user-<id>` channel, which the server libraries' sendToUser() reaches.
 */
import type { MiddlewareHandler } from 'hono';
import { ALL_CHANNEL } from '../core/channels.ts';
import { REFUSED_EXTRA, type Gateway } from '../core/gateway.ts';
import type { Message } from '../core/message.ts';
import { CloseCode, type Session, type SessionSink } from '../core/session.ts';
import type { RawSocket, RuntimeAdapter } from '../runtime/adapter.ts';
import type { ClientAddress } from '../api/client-address.ts';
import { memberId, memberUid, storedChannel, type PusherApp, type PusherApps } from '../pusher/apps.ts';
import {
  CHANNEL_NAME,
  ChannelData,
  IncomingFrame,
  MAX_EVENT_DATA,
  PONG,
  SigninData,
  SubscribeData,
  USER_CHANNEL_PREFIX,
  connectionEstablished,
  eventFrame,
  memberAdded,
  memberRemoved,
  needsAuth,
  presenceSucceeded,
  pusherError,
  signinSuccess,
  storedEvent,
  subscriptionError,
  subscriptionSucceeded,
} from '../pusher/frames.ts';
import { channelAuthValid, userAuthValid } from '../pusher/signing.ts';
import { clientEventHook } from '../pusher/webhooks.ts';
import { MeshError } from '../core/errors.ts';
import { readJson, readJsonOrUndefined } from '../core/edge-input.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import { closeSocket } from './ws.ts';

export interface PusherSocketOptions {
  maxFrame: number;
  /** Deepest JSON a frame (and the JSON inside its strings) may nest. */
  maxJsonDepth: number;
  /** A socket that has neither subscribed nor signed in by then is closed (MESH_AUTH_TIMEOUT, as for pgmesh sockets). */
  idleTimeoutMs: number;
  /** Told when a socket is closed for holding nothing past idleTimeoutMs (metrics). */
  onIdleClosed?: () => void;
  clientAddress?: ClientAddress;
  /** Apps with PUSHER_WEBHOOKS: where an app's client_event webhooks are queued, with the event itself (the store checks the backlog's bound). */
  /** Whether an app's sockets may send client events (PUSHER_CLIENT_EVENTS); default: yes. */
  clientEventsAllowed?: (app: PusherApp) => boolean;
  clientEventHooks?: {
    /** The webhook target of the app's client events, or null (it has no webhook URL). */
    target(app: PusherApp): string | null;
  };
}

/** How long pusher-js waits, idle, before it pings (the protocol's activity_timeout). */
const ACTIVITY_TIMEOUT_S = 30;
/** Pusher's limit on client events: 10 a second per socket (a burst of 10 allowed). */
const CLIENT_EVENTS_PER_S = 10;
/** Key of a message's Pusher frame, built once for every socket that gets it. */
const FRAME = {};
// pgmesh's close codes as Pusher clients act on them: 4200-4299 reconnect at once,
// 4100-4199 reconnect with backoff, 4000-4099 do not reconnect.
const PUSHER_CLOSE: Record<number, number> = {
  [CloseCode.GOING_AWAY]: 4200,
  [CloseCode.SERVICE_RESTART]: 4200,
  [CloseCode.SLOW_CONSUMER]: 4100,
  [CloseCode.FLOOD]: 4100,
  [CloseCode.TOO_BIG]: 4100,
  [CloseCode.KICKED]: 4009,
  // Back off and come again: a page that subscribes later still can.
  [CloseCode.AUTH_TIMEOUT]: 4100,
  [CloseCode.LIMIT]: 4100,
};
// A Pusher socket is anonymous: what it may hear is decided channel by channel, by signatures.
const ANONYMOUS = Object.freeze({ uid: '', subscribe: Object.freeze([]), publish: Object.freeze([]), expiresAt: null });
/** Starts the user id of a socket that is nobody yet (`#<socket_id>`): no app user id is expected to. */
const ANONYMOUS_MARK = '#';

/** Writes Pusher frames to one socket. */
class PusherSink implements SessionSink {
  /** presence channel -> the user_id this socket is a member as (its own joins are not news to it). */
  readonly me = new Map<string, string>();
  /** The user it signed in as (pusher:signin), if it did. */
  user: string | undefined;
  /** Closes the socket if it has not subscribed or signed in by then; cleared when it does. */
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #clientEvents = new TokenBucket(CLIENT_EVENTS_PER_S, CLIENT_EVENTS_PER_S);
  constructor(
    readonly socket: RawSocket,
    readonly app: PusherApp,
  ) {}
  message(message: Message, name: string): void {
    // pgmesh's sendToAll reaches pgmesh's own clients, not an app's Pusher sockets.
    if (name === ALL_CHANNEL) return;
    this.socket.send(message.memo(FRAME, (m) => eventFrame(m.data, name)));
  }
  reply(): void {}
  /** Takes one client event from the socket's allowance; false when it is spent. */
  takeClientEvent(now: number): boolean {
    return this.#clientEvents.take(1, now);
  }
  /** A presence channel's join or leave, as member_added / member_removed. */
  notice(event: string, data: Record<string, unknown>): void {
    const channel = data.channel as string;
    const userId = memberId(this.app, data.uid as string);
    if (userId === this.me.get(channel)) return;
    if (event === 'join') this.socket.send(memberAdded(channel, userId, data.info));
    else if (event === 'leave') this.socket.send(memberRemoved(channel, userId));
  }
  close(code: number, reason: string): void {
    clearTimeout(this.idleTimer);
    closeSocket(this.socket, code, PUSHER_CLOSE[code] ?? code, reason);
  }
  /** It subscribed or signed in: it is doing something, the deadline goes. */
  busy(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
  buffered(): number {
    return this.socket.buffered();
  }
}

/** What a Pusher frame that failed outside its own handling is answered with: nothing (the gateway reported a bug already; a closed socket hears nothing). */
function ignoreFailure(): void {}

// A timer callback taking the session: no closure per connection.
function closeIfIdle(session: Session, onIdleClosed: (() => void) | undefined): void {
  if (session.closed) return;
  onIdleClosed?.();
  session.close(CloseCode.AUTH_TIMEOUT, 'no subscription in time');
}

/** A socket_id as Pusher's server libraries check it (`\d+\.\d+`), unique in the cluster by its 64 random bits. */
function newSocketId(): string {
  const [a, b] = crypto.getRandomValues(new Uint32Array(2));
  return `${a}.${b}`;
}

/** The upgrade handler for /app/:key. */
export function pusherSocketRoute(gateway: Gateway, runtime: RuntimeAdapter, apps: PusherApps, options: PusherSocketOptions): MiddlewareHandler {
  const sinks = new WeakMap<Session, PusherSink>();
  return runtime.upgradeWebSocket((c) => {
    const key = c.req.param('key') ?? '';
    const app = apps.byKey(key);
    const address = options.clientAddress?.(c);
    let session: Session | undefined;
    let socket: RawSocket;
    return {
      onOpen(_event, ws) {
        socket = runtime.socket(ws);
        if (app === undefined) {
          socket.send(pusherError(4001, `App key ${key.slice(0, 64)} does not exist on this server`));
          socket.close(4001, 'unknown app key');
          return;
        }
        try {
          const sink = new PusherSink(socket, app);
          const id = newSocketId();
          session = gateway.open(sink, { format: 'raw', ackMode: false, transport: 'websocket', address, id, identity: ANONYMOUS });
          sinks.set(session, sink);
          sink.idleTimer = setTimeout(closeIfIdle, options.idleTimeoutMs, session, options.onIdleClosed);
          // In the cluster's presence from the start (the HTTP API counts its channels), as nobody until a presence channel says who.
          gateway.identify(session, { ...ANONYMOUS, uid: memberUid(app, `${ANONYMOUS_MARK}${id}`) });
          socket.send(connectionEstablished(session.id, ACTIVITY_TIMEOUT_S));
        } catch (err) {
          gateway.report(err);
        }
      },
      // Nothing a client sends may throw out of here: the runtime would take the process down with it.
      onMessage(event) {
        if (session === undefined || app === undefined) return;
        try {
          if (!gateway.admit(session)) return;
          const text = event.data;
          if (typeof text !== 'string' || text.length > options.maxFrame) {
            socket.send(pusherError(4301, 'frames must be JSON text under the size limit'));
            gateway.admit(session, REFUSED_EXTRA);
            return;
          }
          let frame;
          try {
            frame = IncomingFrame.parse(readJson(text, options.maxJsonDepth, 'frame'));
          } catch (err) {
            socket.send(pusherError(null, err instanceof MeshError ? `invalid frame: ${err.message}` : 'invalid frame: expected {"event","data"}'));
            gateway.admit(session, REFUSED_EXTRA);
            return;
          }
          handle(app, session, socket, frame);
        } catch (err) {
          gateway.report(err);
        }
      },
      onClose() {
        try {
          if (session !== undefined) {
            sinks.get(session)?.busy();
            gateway.close(session);
          }
        } catch (err) {
          gateway.report(err);
        }
      },
    };
  });

  // A ping is answered at once; everything else runs behind the socket's earlier frames, as pgmesh ops do:
  // an unsubscribe right after a presence subscribe waits for the join to finish, then undoes it.
  function handle(app: PusherApp, session: Session, socket: RawSocket, frame: ReturnType<typeof IncomingFrame.parse>): void {
    if (frame.event === 'pusher:ping') return socket.send(PONG);
    void gateway.serially(session, () => run(app, session, socket, frame), ignoreFailure);
  }

  async function run(app: PusherApp, session: Session, socket: RawSocket, frame: ReturnType<typeof IncomingFrame.parse>): Promise<void> {
    if (frame.event === 'pusher:subscribe') return subscribe(app, session, socket, frame.data);
    if (frame.event === 'pusher:unsubscribe') {
      const parsed = SubscribeData.safeParse(frame.data);
      if (parsed.success) gateway.leaveChannel(session, storedChannel(app, parsed.data.channel));
      return;
    }
    if (frame.event === 'pusher:signin') return signin(app, session, socket, frame.data);
    if (frame.event.startsWith('client-')) return clientEvent(app, session, socket, frame);
  }

  function signin(app: PusherApp, session: Session, socket: RawSocket, data: unknown): void {
    const parsed = SigninData.safeParse(data);
    const user = parsed.success && userAuthValid(app, session.id, parsed.data.user_data, parsed.data.auth) ? readJsonOrUndefined(parsed.data.user_data, options.maxJsonDepth) : undefined;
    const id = (user as { id?: unknown } | undefined)?.id;
    if (!parsed.success || (typeof id !== 'string' && typeof id !== 'number') || String(id) === '') {
      // As Pusher does: a failed sign-in ends the connection (4009, pusher-js does not reconnect).
      socket.send(pusherError(4009, parsed.success && user !== undefined ? 'user_data must be JSON with an "id"' : 'Connection not authorized: the sign-in signature is not valid for this socket'));
      socket.close(4009, 'sign-in refused');
      return;
    }
    const sink = sinks.get(session)!;
    sink.busy();
    sink.user = String(id);
    gateway.identify(session, { ...ANONYMOUS, uid: memberUid(app, sink.user) });
    socket.send(signinSuccess(parsed.data.user_data));
  }

  async function subscribe(app: PusherApp, session: Session, socket: RawSocket, data: unknown): Promise<void> {
    const parsed = SubscribeData.safeParse(data);
    if (!parsed.success) return socket.send(pusherError(null, 'pusher:subscribe needs {"channel"}'));
    const { channel, auth, channel_data } = parsed.data;
    if (channel.startsWith(USER_CHANNEL_PREFIX)) {
      // Only the user it is for, signed in on this socket.
      const user = sinks.get(session)?.user;
      if (user === undefined || channel !== `${USER_CHANNEL_PREFIX}${user}`) return socket.send(subscriptionError(channel, 'AuthError', `${channel} is the channel of a user this socket has not signed in as`, 403));
      if (!joined(session, socket, channel, () => gateway.joinChannel(session, storedChannel(app, channel), channel))) return;
      await gateway.settled();
      return socket.send(subscriptionSucceeded(channel));
    }
    if (!CHANNEL_NAME.test(channel)) return socket.send(subscriptionError(channel, 'InvalidChannel', 'channel names are 1-164 of A-Z a-z 0-9 _ - = @ , . ;', 400));
    if (needsAuth(channel) && !channelAuthValid(app, session.id, channel, auth, channel.startsWith('presence-') ? channel_data : undefined)) {
      return socket.send(subscriptionError(channel, 'AuthError', `the auth signature for ${channel} is not valid for this socket`, 401));
    }
    const stored = storedChannel(app, channel);
    if (channel.startsWith('presence-')) return joinPresence(app, session, socket, channel, stored, channel_data);
    if (!joined(session, socket, channel, () => gateway.joinChannel(session, stored, channel))) return;
    // Read-your-writes, as for pgmesh's subscribe: the app's HTTP API counts this socket once it is told it is in.
    await gateway.settled();
    socket.send(subscriptionSucceeded(channel));
  }

  /** Runs a join; a refusal at a limit becomes the channel's subscription_error. True when it joined. */
  function joined(session: Session, socket: RawSocket, channel: string, join: () => void): boolean {
    try {
      join();
    } catch (err) {
      if (!(err instanceof MeshError) || err.code !== 'ERR_LIMIT') throw err;
      socket.send(subscriptionError(channel, 'LimitReached', err.message, 429));
      return false;
    }
    sinks.get(session)?.busy();
    return true;
  }

  async function joinPresence(app: PusherApp, session: Session, socket: RawSocket, channel: string, stored: string, channelData: string | undefined): Promise<void> {
    const member = ChannelData.safeParse(readJsonOrUndefined(channelData, options.maxJsonDepth));
    if (!member.success) return socket.send(subscriptionError(channel, 'InvalidChannelData', 'channel_data must be JSON with a user_id', 400));
    const userId = String(member.data.user_id);
    // From its first presence channel on (unless it signed in), the connection is this app's user (presence rows, terminate_connections).
    const current = memberId(app, session.uid ?? '');
    if (current.startsWith(ANONYMOUS_MARK)) gateway.identify(session, { ...ANONYMOUS, uid: memberUid(app, userId) });
    // The cluster's presence knows a socket as one user: a second identity would make its member lists wrong.
    else if (current !== userId) return socket.send(subscriptionError(channel, 'AuthError', `this socket is user ${current}; channel_data names ${userId}`, 403));
    sinks.get(session)?.me.set(channel, userId);
    const info = member.data.user_info === undefined ? undefined : JSON.stringify(member.data.user_info);
    let members;
    try {
      members = await gateway.joinPresence(session, stored, channel, info);
    } catch (err) {
      if (err instanceof MeshError && err.code === 'ERR_CLOSED') return;
      if (err instanceof MeshError && err.code === 'ERR_LIMIT') return socket.send(subscriptionError(channel, 'LimitReached', err.message, 429));
      return socket.send(subscriptionError(channel, 'ServerError', 'the member list could not be read', 503));
    }
    sinks.get(session)?.busy();
    // The members as the cluster has them, and this socket's member (its own row may not be written yet).
    const hash: Record<string, unknown> = {};
    for (const uid of members.uids) hash[memberId(app, uid)] = members.info[uid] == null ? null : JSON.parse(members.info[uid]!);
    hash[userId] = member.data.user_info ?? null;
    socket.send(presenceSucceeded(channel, hash));
  }

  async function clientEvent(app: PusherApp, session: Session, socket: RawSocket, frame: ReturnType<typeof IncomingFrame.parse>): Promise<void> {
    const channel = frame.channel ?? '';
    if (options.clientEventsAllowed?.(app) === false) return socket.send(pusherError(4301, 'client events are disabled for this app'));
    if (!needsAuth(channel)) return socket.send(pusherError(4301, 'client events are only for private and presence channels'));
    if (!session.isSubscribed(storedChannel(app, channel))) return socket.send(pusherError(4301, `client event on ${channel}: not subscribed to it`));
    const sink = sinks.get(session)!;
    if (!sink.takeClientEvent(performance.now())) return socket.send(pusherError(4301, `client event on ${channel}: over the limit of ${CLIENT_EVENTS_PER_S} a second`));
    const data = frame.data ?? null;
    // On a presence channel the others learn who sent it.
    const userId = sink.me.get(channel);
    const stored = storedEvent(frame.event, data, userId);
    // Pusher's limit, on the data as it travels (the stored event is that plus the name and the user).
    if (stored.length > MAX_EVENT_DATA && new TextEncoder().encode(JSON.stringify(data)).length > MAX_EVENT_DATA) {
      return socket.send(pusherError(4301, `client event on ${channel}: the event data should be less than ${MAX_EVENT_DATA / 1024} KB`));
    }
    // The app's backend hears of it through its webhook, written in the event's own transaction.
    const target = options.clientEventHooks?.target(app) ?? null;
    const hook = target === null ? undefined : { target, event: clientEventHook(channel, frame.event, data, session.id, userId) };
    try {
      await gateway.publishFor(session, [{ channel: storedChannel(app, channel), data: stored, sender: null, exclude: [session.id], hook }]);
    } catch (err) {
      if (err instanceof MeshError && err.code === 'ERR_CLOSED') return;
      return socket.send(pusherError(4301, 'client event not sent: the store is unavailable'));
    }
  }
}
