/**
 * The WebSocket endpoint: one session per socket, text frames in, replies and
 * messages out as JSON text frames. `?format=envelope` switches delivered
 * messages to the envelope the bundled client uses; `?token=` authenticates at
 * connect; `?ack=1` makes the user's cursors move on explicit acks only.
 */
import type { MiddlewareHandler } from 'hono';
import { MeshError } from '../core/errors.ts';
import type { Gateway } from '../core/gateway.ts';
import type { DeliveryFormat, Message } from '../core/message.ts';
import { type Reply, encodeReply } from '../core/protocol.ts';
import { CloseCode, type Session, type SessionSink } from '../core/session.ts';
import type { RawSocket, RuntimeAdapter } from '../runtime/adapter.ts';
import type { ClientAddress } from '../api/client-address.ts';

export interface WsOptions {
  maxFrame: number;
  /** The client's address behind the deployment's proxies. */
  clientAddress?: ClientAddress;
}

const encoder = new TextEncoder();

/**
 * Closes a socket for a session closed with `code`, sending `wireCode` (a dialect's own code for it).
 * A flooding client is cut off where the runtime can: what it already sent is not read.
 */
export function closeSocket(socket: RawSocket, code: number, wireCode: number, reason: string): void {
  if (code === CloseCode.FLOOD && socket.cutOff) socket.cutOff(wireCode, reason);
  else socket.close(wireCode, reason);
}

/** A session sink writing JSON text frames to a socket (a class: no closures per connection). */
export class SocketSink implements SessionSink {
  readonly topics: RawSocket['topics'];
  constructor(
    readonly socket: RawSocket,
    readonly format: DeliveryFormat,
  ) {
    this.topics = socket.topics;
  }
  message(message: Message, name: string): void {
    this.socket.send(message.frameAs(this.format, name));
  }
  reply(reply: Reply): void {
    this.socket.send(encodeReply(reply));
  }
  notice(event: string, data: Record<string, unknown>): void {
    this.socket.send(JSON.stringify({ event, ...data }));
  }
  close(code: number, reason: string): void {
    closeSocket(this.socket, code, code, reason);
  }
  buffered(): number {
    return this.socket.buffered();
  }
}

/** The upgrade handler for every WebSocket path. */
export function websocketRoute(gateway: Gateway, runtime: RuntimeAdapter, options: WsOptions): MiddlewareHandler {
  return runtime.upgradeWebSocket((c) => {
    const query = new URL(c.req.url).searchParams;
    const format = query.get('format') === 'envelope' ? 'envelope' : 'raw';
    const ackMode = ['1', 'true'].includes(query.get('ack') ?? '');
    const token = query.get('token');
    const address = options.clientAddress?.(c);
    let session: Session | undefined;
    return {
      onOpen(_event, ws) {
        try {
          const s = (session = gateway.open(new SocketSink(runtime.socket(ws), format), { format, ackMode, transport: 'websocket', address }));
          if (token) gateway.run(s, { op: 'auth', token }).then((reply) => s.reply(reply)).catch(gateway.report);
        } catch (err) {
          gateway.report(err);
        }
      },
      // Nothing a client sends may throw out of here: the runtime would take the process down with it.
      onMessage(event) {
        if (session === undefined) return;
        try {
          const data = event.data;
          if (typeof data !== 'string') {
            session.reply(gateway.fail('error', undefined, new MeshError('ERR_BINARY_FRAME', 'binary frames are not supported: send JSON text')));
            return;
          }
          if (tooBig(data, options.maxFrame)) {
            session.close(CloseCode.TOO_BIG, 'frame too large');
            return;
          }
          gateway.receive(session, data);
        } catch (err) {
          gateway.report(err);
        }
      },
      onClose() {
        try {
          if (session !== undefined) gateway.close(session);
        } catch (err) {
          gateway.report(err);
        }
      },
    };
  });
}

function tooBig(text: string, max: number): boolean {
  if (text.length > max) return true;
  return text.length * 3 > max && encoder.encode(text).length > max;
}
