/**
 * The EventSource transport: GET /v1/sse opens a stream (the downlink), POST
 * /v1/sse/<session> carries op frames (the uplink) and answers with their
 * replies. Same sessions, ops and replies as the WebSocket; only the framing
 * differs. Every message is `id: <id>` + `data: <d>` (or, with
 * `?format=envelope`, the envelope JSON), so Last-Event-ID resumes exactly.
 */
import { Hono, type Context } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Authenticator } from '../core/auth.ts';
import { MeshError, type MeshErrorCode } from '../core/errors.ts';
import { decodeFrame, errorReply } from '../core/protocol.ts';
import type { Session, SessionSink } from '../core/session.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import type { Gateway } from './gateway.ts';

export interface SseOptions {
  cookieName: string;
  heartbeatMs: number;
  retryMs: number;
  /** Largest uplink body, in bytes. */
  maxFrame: number;
}

const HIGH_WATER = 64 * 1024;
const MAX_FRAMES_PER_POST = 100;
const encoder = new TextEncoder();

/** The token of a request: Authorization Bearer, then ?token=, then the cookie. */
function tokenOf(c: Context, cookieName: string): string | undefined {
  const header = c.req.header('authorization');
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  return c.req.query('token') ?? getCookie(c, cookieName);
}

/** Throws the error a reply frame reports, if it reports one. */
function raiseIfFailed(reply: string | undefined): void {
  const frame = reply === undefined ? undefined : (JSON.parse(reply) as { success?: boolean; reason?: MeshErrorCode; msg?: string });
  if (frame?.success === false) throw new MeshError(frame.reason ?? 'ERR_INTERNAL', frame.msg);
}

/** GET / (the stream) and POST /:session (the uplink); mount at /v1/sse. */
export function sseRoutes(gateway: Gateway, auth: Authenticator, runtime: RuntimeAdapter, options: SseOptions): Hono {
  const sessions = new Map<string, Session>();
  const app = new Hono();

  app.get('/', async (c) => {
    const token = tokenOf(c, options.cookieName);
    if (!token) throw new MeshError('ERR_NOT_AUTH', 'no token: send Authorization: Bearer, ?token= or the cookie');
    const channels = c.req.queries('channel') ?? [];
    const lastEventId = c.req.header('last-event-id') ?? c.req.query('lastEventId');
    if (lastEventId !== undefined && lastEventId !== '' && !/^\d{1,15}$/.test(lastEventId)) {
      throw new MeshError('ERR_BAD_ARGS', 'Last-Event-ID must be a message id');
    }
    const since = lastEventId ? Number(lastEventId) : undefined;

    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let session: Session | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      if (session) {
        sessions.delete(session.id);
        gateway.close(session);
      }
    };
    const stream = new ReadableStream<Uint8Array>(
      { start: (ctrl) => void (controller = ctrl), cancel: finish },
      new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }),
    );
    const write = (text: string) => {
      if (done) return;
      try {
        controller.enqueue(encoder.encode(text));
      } catch {
        finish();
      }
    };
    const sink: SessionSink = {
      send: write,
      close: (code, reason) => {
        write(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
        finish();
        try {
          controller.close();
        } catch {
          // already closed by the client
        }
      },
      buffered: () => Math.max(0, HIGH_WATER - (controller.desiredSize ?? 0)),
    };
    const format = c.req.query('format') === 'envelope' ? 'sse-envelope' : 'sse';
    session = gateway.open(sink, { format, ackMode: false, transport: 'sse' });
    c.req.raw.signal?.addEventListener('abort', finish);

    try {
      let reply: string | undefined;
      await gateway.run(session, { op: 'auth', token }, (r) => (reply = r));
      raiseIfFailed(reply);
      sessions.set(session.id, session);
      write(`retry: ${options.retryMs}\nevent: session\ndata: ${JSON.stringify({ session: session.id, uid: session.uid })}\n\n`);
      if (channels.length > 0) {
        reply = undefined;
        await gateway.run(session, { op: 'subscribe', channels, ...(since === undefined ? {} : { since }) }, (r) => (reply = r));
        raiseIfFailed(reply);
      }
    } catch (err) {
      finish();
      throw err;
    }
    heartbeat = setInterval(() => write(': ping\n\n'), options.heartbeatMs);
    runtime.keepOpen(c);
    return new Response(stream, {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      },
    });
  });

  app.post('/:session', async (c) => {
    const session = sessions.get(c.req.param('session'));
    if (!session || session.closed) throw new MeshError('ERR_NOT_FOUND', 'no such session: it was closed, or lives on another instance');
    const token = tokenOf(c, options.cookieName);
    if (!token) throw new MeshError('ERR_NOT_AUTH', 'no token: send Authorization: Bearer, ?token= or the cookie');
    const caller = await auth.verify(token);
    if (caller.uid !== session.uid) throw new MeshError('ERR_FORBIDDEN', 'this session belongs to another user');

    const body = await c.req.text();
    if (body.length > options.maxFrame * MAX_FRAMES_PER_POST) throw new MeshError('ERR_TOO_LARGE', 'request body too large');
    const decoded = decodeFrame(body);
    const frames = Array.isArray(decoded) ? decoded : [decoded];
    if (frames.length > MAX_FRAMES_PER_POST) throw new MeshError('ERR_BAD_ARGS', `at most ${MAX_FRAMES_PER_POST} frames per request`);
    const replies: string[] = [];
    for (const frame of frames) {
      if (typeof frame === 'object' && frame !== null && (frame as { op?: unknown }).op === 'auth') {
        const refused = new MeshError('ERR_FORBIDDEN', 'the stream is authenticated when it opens: use refresh');
        replies.push(errorReply('auth', (frame as { rid?: unknown }).rid, refused));
        continue;
      }
      await gateway.run(session, frame, (reply) => replies.push(reply));
    }
    // Reply frames are JSON text already: answer with them as they are.
    return c.body(Array.isArray(decoded) ? `[${replies.join(',')}]` : replies[0]!, 200, { 'content-type': 'application/json' });
  });

  return app;
}
