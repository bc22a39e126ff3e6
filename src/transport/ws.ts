/**
 * The WebSocket endpoint: one session per socket, text frames in, replies and
 * messages out. `?format=envelope` switches delivered messages to the envelope
 * the bundled client uses; `?token=` authenticates at connect; `?ack=1` makes
 * the user's cursors move on explicit acks only.
 */
import type { MiddlewareHandler } from 'hono';
import { MeshError } from '../core/errors.ts';
import { errorReply } from '../core/protocol.ts';
import { CloseCode, type Session } from '../core/session.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import type { Gateway } from './gateway.ts';

export interface WsOptions {
  maxFrame: number;
}

const encoder = new TextEncoder();

/** The upgrade handler for every WebSocket path. */
export function websocketRoute(gateway: Gateway, runtime: RuntimeAdapter, options: WsOptions): MiddlewareHandler {
  return runtime.upgradeWebSocket((c) => {
    const query = new URL(c.req.url).searchParams;
    const format = query.get('format') === 'envelope' ? 'envelope' : 'raw';
    const ackMode = ['1', 'true'].includes(query.get('ack') ?? '');
    const token = query.get('token');
    let session: Session | undefined;
    return {
      onOpen(_event, ws) {
        session = gateway.open(runtime.socketSink(ws), { format, ackMode, transport: 'websocket' });
        const s = session;
        if (token) void gateway.authenticate(s, token, (reply) => s.send(reply));
      },
      onMessage(event) {
        if (session === undefined) return;
        const data = event.data;
        if (typeof data !== 'string') {
          session.send(errorReply('error', undefined, new MeshError('ERR_BINARY_FRAME', 'binary frames are not supported: send JSON text')));
          return;
        }
        if (tooBig(data, options.maxFrame)) {
          session.close(CloseCode.TOO_BIG, 'frame too large');
          return;
        }
        gateway.receive(session, data);
      },
      onClose() {
        if (session !== undefined) gateway.close(session);
      },
    };
  });
}

function tooBig(text: string, max: number): boolean {
  if (text.length > max) return true;
  return text.length * 3 > max && encoder.encode(text).length > max;
}
