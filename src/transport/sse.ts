/**
 * The EventSource transport: GET /v1/sse opens a stream (the downlink), POST
 * /v1/sse/<session> carries op frames (the uplink) and answers with their
 * replies. Same sessions, ops and replies as the WebSocket; all SSE framing
 * lives here. Every message is `id: <id>` + `data: <d>` (or, with
 * `?format=envelope`, the envelope JSON), so Last-Event-ID resumes exactly.
 */
import { Hono, type Context } from 'hono';
import { getCookie } from 'hono/cookie';
import { bearerToken, type Authenticator } from '../core/auth.ts';
import { MeshError } from '../core/errors.ts';
import type { Gateway } from '../core/gateway.ts';
import type { DeliveryFormat, Message } from '../core/message.ts';
import { type Reply, encodeReply, ridOf } from '../core/protocol.ts';
import type { ClientAddress } from '../api/client-address.ts';
import { boundedText } from '../core/request-body.ts';
import { relayUplink, type UplinkRelay } from './uplink-relay.ts';
import { isConnectionId, type SessionSink } from '../core/session.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import { EventStreamSink, Heartbeat } from './event-stream.ts';

export interface SseOptions {
  cookieName: string;
  heartbeatMs: number;
  retryMs: number;
  /** Largest uplink body, in bytes. */
  maxFrame: number;
  /** Passes a POST for another instance's stream to that instance (absent: 404). */
  relay?: UplinkRelay;
  /** The client's address behind the deployment's proxies. */
  clientAddress?: ClientAddress;
}

const MAX_FRAMES_PER_POST = 100;
const encoder = new TextEncoder();
// Keys of the per-message byte caches: one encoding per format, shared by every stream.
const EVENT_BYTES: Record<DeliveryFormat, object> = { raw: {}, envelope: {} };

/** The `data:` lines of an SSE event: one per line of the text, whatever its line breaks. */
export function sseData(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('');
}

/** One SSE event's text. */
function sseEvent(event: string, data: string): string {
  return `event: ${event}\n${sseData(data)}\n`;
}

function messageEvent(message: Message, format: DeliveryFormat, name: string): string {
  return `id: ${message.id}\n${sseData(message.frameAs(format, name))}\n`;
}

/** The token of a request: Authorization Bearer, then ?token=, then the cookie. */
function tokenOf(c: Context, cookieName: string): string | undefined {
  return bearerToken(c.req.header('authorization')) || c.req.query('token') || getCookie(c, cookieName) || undefined;
}

/** Throws the error a reply reports, if it reports one. */
function raiseIfFailed(reply: Reply): void {
  if (reply.kind === 'error') throw reply.error;
}

const PING = encoder.encode(': ping\n\n');

/**
 * One open event stream: the session's sink over the runtime's event body. A class, not
 * closures, so an idle stream costs as little as it can; its heartbeat is shared.
 */
class EventStream extends EventStreamSink implements SessionSink {
  constructor(
    readonly format: DeliveryFormat,
    streams: Set<EventStreamSink>,
    gateway: Gateway,
    runtime: RuntimeAdapter,
    request: Request,
  ) {
    super(streams, gateway, runtime, request);
  }

  write(bytes: Uint8Array): void {
    if (!this.done) this.out.write(bytes);
  }

  writeText(text: string): void {
    this.write(encoder.encode(text));
  }

  message(message: Message, name: string): void {
    const format = this.format;
    this.write(name === message.channel ? message.memo(EVENT_BYTES[format], (m) => encoder.encode(messageEvent(m, format, name))) : encoder.encode(messageEvent(message, format, name)));
  }

  reply(reply: Reply): void {
    this.writeText(sseEvent('reply', encodeReply(reply)));
  }

  notice(event: string, data: Record<string, unknown>): void {
    this.writeText(sseEvent(event, JSON.stringify(data)));
  }

  close(code: number, reason: string): void {
    this.writeText(sseEvent('close', JSON.stringify({ code, reason })));
    this.finish();
    this.out.close();
  }
}

/** GET / (the stream) and POST /:session (the uplink); mount at /v1/sse. */
export function sseRoutes(gateway: Gateway, auth: Authenticator, runtime: RuntimeAdapter, options: SseOptions): Hono {
  const app = new Hono();
  const heartbeat = new Heartbeat(options.heartbeatMs, PING);

  app.get('/', async (c) => {
    const token = tokenOf(c, options.cookieName);
    if (!token) throw new MeshError('ERR_NOT_AUTH', 'no token: send Authorization: Bearer, ?token= or the cookie');
    const channels = c.req.queries('channel') ?? [];
    const lastEventId = c.req.header('last-event-id') ?? c.req.query('lastEventId');
    if (lastEventId !== undefined && lastEventId !== '' && !/^\d{1,15}$/.test(lastEventId)) {
      throw new MeshError('ERR_BAD_ARGS', 'Last-Event-ID must be a message id');
    }
    const since = lastEventId ? Number(lastEventId) : undefined;

    const format: DeliveryFormat = c.req.query('format') === 'envelope' ? 'envelope' : 'raw';
    // A client gone while we authenticate is noticed too: the runtime's body tells (see EventBody).
    const sink = new EventStream(format, heartbeat.streams, gateway, runtime, c.req.raw);
    const session = (sink.session = gateway.open(sink, { format, ackMode: false, transport: 'sse', address: options.clientAddress?.(c) }));
    try {
      raiseIfFailed(await gateway.run(session, { op: 'auth', token }));
      sink.writeText(`retry: ${options.retryMs}\n${sseEvent('session', JSON.stringify({ session: session.id, uid: session.uid, connection: session.id, ...gateway.whereabouts }))}`);
      if (channels.length > 0) raiseIfFailed(await gateway.run(session, { op: 'subscribe', channels, since }));
    } catch (err) {
      sink.finish();
      throw err;
    }
    sink.out.handedOver();
    heartbeat.add(sink);
    runtime.keepOpen(c);
    return new Response(sink.out.body, {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      },
    });
  });

  app.post('/:session', async (c) => {
    const id = c.req.param('session');
    // The id names the instance that holds the stream, and may be passed on in a header: only ids of the shape pgmesh gives out.
    if (!isConnectionId(id)) throw new MeshError('ERR_NOT_FOUND', 'no such session: not a session id');
    const session = gateway.session(id);
    if (!session || session.transport !== 'sse' || session.closed) {
      const relayed = session === undefined && options.relay ? await relayUplink(c, options.relay, id, options.maxFrame * MAX_FRAMES_PER_POST) : null;
      if (relayed) return relayed;
      throw new MeshError('ERR_NOT_FOUND', 'no such session: it was closed, or its instance is gone');
    }
    const token = tokenOf(c, options.cookieName);
    if (!token) throw new MeshError('ERR_NOT_AUTH', 'no token: send Authorization: Bearer, ?token= or the cookie');
    const caller = await auth.verify(token);
    if (caller.uid !== session.uid) throw new MeshError('ERR_FORBIDDEN', 'this session belongs to another user');

    const body = await boundedText(c.req.raw, options.maxFrame * MAX_FRAMES_PER_POST);
    const decoded = gateway.decode(body);
    const frames = Array.isArray(decoded) ? decoded : [decoded];
    if (frames.length > MAX_FRAMES_PER_POST) throw new MeshError('ERR_BAD_ARGS', `at most ${MAX_FRAMES_PER_POST} frames per request`);
    const replies: string[] = [];
    for (const frame of frames) {
      if (typeof frame === 'object' && frame !== null && (frame as { op?: unknown }).op === 'auth') {
        const refused = new MeshError('ERR_FORBIDDEN', 'the stream is authenticated when it opens: use refresh');
        replies.push(encodeReply(gateway.fail('auth', ridOf(frame), refused)));
        continue;
      }
      replies.push(encodeReply(await gateway.handle(session, frame)));
    }
    return c.body(Array.isArray(decoded) ? `[${replies.join(',')}]` : replies[0]!, 200, { 'content-type': 'application/json' });
  });

  return app;
}
