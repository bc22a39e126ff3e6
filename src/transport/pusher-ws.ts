/**
 * The Pusher Channels socket, /app/{key}: pusher-js and Laravel Echo connect
 * here unchanged. Each socket is a pgmesh session (so the hub fans out to it,
 * the outbox backs it, the server API can close it) whose id is its socket_id;
 * its frames are Pusher's. Public channels are open to all; `private-` ones need
 * the signature the app's auth endpoint returns; a `client-` event goes to the
 * channel's other subscribers, through the outbox like any message.
 */
import type { MiddlewareHandler } from 'hono';
import { ALL_CHANNEL } from '../core/channels.ts';
import type { Gateway } from '../core/gateway.ts';
import type { Hub } from '../core/hub.ts';
import type { Message } from '../core/message.ts';
import type { MessageLog } from '../core/message-log.ts';
import { CloseCode, type Session, type SessionSink } from '../core/session.ts';
import type { RawSocket, RuntimeAdapter } from '../runtime/adapter.ts';
import type { ClientAddress } from '../api/client-address.ts';
import { storedChannel, type PusherApp, type PusherApps } from '../pusher/apps.ts';
import { CHANNEL_NAME, IncomingFrame, PONG, SubscribeData, connectionEstablished, eventFrame, needsAuth, pusherError, storedEvent, subscriptionError, subscriptionSucceeded } from '../pusher/frames.ts';
import { channelAuthValid } from '../pusher/signing.ts';

export interface PusherSocketOptions {
  maxFrame: number;
  clientAddress?: ClientAddress;
}

/** How long pusher-js waits, idle, before it pings (the protocol's activity_timeout). */
const ACTIVITY_TIMEOUT_S = 30;
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
};
// A Pusher socket is anonymous: what it may hear is decided channel by channel, by signatures.
const ANONYMOUS = Object.freeze({ uid: '', subscribe: Object.freeze([]), publish: Object.freeze([]), expiresAt: null });

/** Writes Pusher frames to one socket. */
class PusherSink implements SessionSink {
  constructor(readonly socket: RawSocket) {}
  message(message: Message, name: string): void {
    // pgmesh's sendToAll reaches pgmesh's own clients, not an app's Pusher sockets.
    if (name === ALL_CHANNEL) return;
    this.socket.send(message.memo(FRAME, (m) => eventFrame(m.data, name)));
  }
  reply(): void {}
  notice(): void {}
  close(code: number, reason: string): void {
    this.socket.close(PUSHER_CLOSE[code] ?? code, reason);
  }
  buffered(): number {
    return this.socket.buffered();
  }
}

/** A socket_id as Pusher's server libraries check it (`\d+\.\d+`), unique in the cluster by its 64 random bits. */
function newSocketId(): string {
  const [a, b] = crypto.getRandomValues(new Uint32Array(2));
  return `${a}.${b}`;
}

/** The upgrade handler for /app/:key. */
export function pusherSocketRoute(gateway: Gateway, hub: Hub, log: MessageLog, runtime: RuntimeAdapter, apps: PusherApps, options: PusherSocketOptions): MiddlewareHandler {
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
        session = gateway.open(new PusherSink(socket), { format: 'raw', ackMode: false, transport: 'websocket', address, id: newSocketId(), identity: ANONYMOUS });
        socket.send(connectionEstablished(session.id, ACTIVITY_TIMEOUT_S));
      },
      onMessage(event) {
        if (session === undefined || app === undefined) return;
        const text = event.data;
        if (typeof text !== 'string' || text.length > options.maxFrame) {
          socket.send(pusherError(4301, 'frames must be JSON text under the size limit'));
          return;
        }
        let frame;
        try {
          frame = IncomingFrame.parse(JSON.parse(text));
        } catch {
          socket.send(pusherError(null, 'invalid frame: expected {"event","data"}'));
          return;
        }
        handle(app, session, socket, frame);
      },
      onClose() {
        if (session !== undefined) gateway.close(session);
      },
    };
  });

  function handle(app: PusherApp, session: Session, socket: RawSocket, frame: ReturnType<typeof IncomingFrame.parse>): void {
    if (frame.event === 'pusher:ping') return socket.send(PONG);
    if (frame.event === 'pusher:subscribe') return subscribe(app, session, socket, frame.data);
    if (frame.event === 'pusher:unsubscribe') {
      const channel = SubscribeData.safeParse(frame.data);
      if (channel.success) hub.unsubscribe(session, storedChannel(app, channel.data.channel));
      return;
    }
    if (frame.event.startsWith('client-')) return void clientEvent(app, session, socket, frame);
  }

  function subscribe(app: PusherApp, session: Session, socket: RawSocket, data: unknown): void {
    const parsed = SubscribeData.safeParse(data);
    if (!parsed.success) return socket.send(pusherError(null, 'pusher:subscribe needs {"channel"}'));
    const { channel, auth, channel_data } = parsed.data;
    if (!CHANNEL_NAME.test(channel)) return socket.send(subscriptionError(channel, 'InvalidChannel', 'channel names are 1-164 of A-Z a-z 0-9 _ - = @ , . ;', 400));
    if (channel.startsWith('presence-')) return socket.send(subscriptionError(channel, 'NotSupported', 'presence channels are not available on this server yet', 501));
    if (needsAuth(channel) && !channelAuthValid(app, session.id, channel, auth, channel_data)) {
      return socket.send(subscriptionError(channel, 'AuthError', `the auth signature for ${channel} is not valid for this socket`, 401));
    }
    const stored = storedChannel(app, channel);
    if (!session.isSubscribed(stored)) hub.subscribe(session, stored, channel, 'plain');
    socket.send(subscriptionSucceeded(channel));
  }

  async function clientEvent(app: PusherApp, session: Session, socket: RawSocket, frame: ReturnType<typeof IncomingFrame.parse>): Promise<void> {
    const channel = frame.channel ?? '';
    if (!needsAuth(channel)) return socket.send(pusherError(4301, 'client events are only for private and presence channels'));
    if (!session.isSubscribed(storedChannel(app, channel))) return socket.send(pusherError(4301, `client event on ${channel}: not subscribed to it`));
    try {
      await log.publish([{ channel: storedChannel(app, channel), data: storedEvent(frame.event, frame.data ?? null), sender: null, exclude: [session.id] }]);
    } catch {
      socket.send(pusherError(4301, 'client event not sent: the store is unavailable'));
    }
  }
}
