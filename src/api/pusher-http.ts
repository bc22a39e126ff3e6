/**
 * The Pusher HTTP API, signed exactly as Pusher verifies it: what the official
 * server libraries and Laravel's Pusher broadcaster call. POST
 * /apps/{id}/events sends one event to up to 100 channels (leaving out
 * `socket_id`: Laravel's toOthers()), POST /apps/{id}/batch_events up to 10
 * events. Each is committed to the outbox before the answer.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { boundedText } from '../core/request-body.ts';
import type { MessageLog, NewMessage } from '../core/message-log.ts';
import { storedChannel, type PusherApp, type PusherApps } from '../pusher/apps.ts';
import { CHANNEL_NAME, storedEvent } from '../pusher/frames.ts';
import { apiSignatureProblem } from '../pusher/signing.ts';

/** Pusher's own limits: 10 KB of data per event, 100 channels per event, 10 events per batch. */
const MAX_DATA = 10 * 1024;
const MAX_BODY = 256 * 1024;

const Event = z.object({
  name: z.string({ error: 'name is required' }).min(1).max(200, 'event names are at most 200 characters'),
  data: z.string({ error: 'data must be a string (JSON-encode objects)' }),
  channel: z.string().optional(),
  channels: z.array(z.string()).min(1).max(100, 'at most 100 channels per event').optional(),
  socket_id: z.string().regex(/^\d+\.\d+$/, 'socket_id is not a socket id').optional(),
  info: z.string().optional(),
});
const Batch = z.object({ batch: z.array(Event).min(1).max(10, 'at most 10 events per batch') });

/** An answer as Pusher's API gives it: `{"error"}` with the status. */
class PusherApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 413 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** The routes under /apps/{id}. */
export function pusherApiRoutes(apps: PusherApps, log: MessageLog): Hono {
  const api = new Hono();
  api.onError((err, c) => (err instanceof PusherApiError ? c.json({ error: err.message, code: err.status }, err.status) : c.json({ error: 'internal error', code: 500 }, 500)));

  api.post('/apps/:appId/events', async (c) => {
    const { app, body } = await signed(c, apps);
    await publish(app, log, [parse(Event, body)]);
    return c.json({});
  });

  api.post('/apps/:appId/batch_events', async (c) => {
    const { app, body } = await signed(c, apps);
    await publish(app, log, parse(Batch, body).batch);
    return c.json({ batch: [] });
  });
  return api;
}

/** The request's app and body, once its signature holds. */
async function signed(c: Context, apps: PusherApps): Promise<{ app: PusherApp; body: string }> {
  const app = apps.byId(c.req.param('appId') ?? '');
  if (app === undefined) throw new PusherApiError(404, 'no app with this id');
  let body: string;
  try {
    body = await boundedText(c.req.raw, MAX_BODY);
  } catch {
    throw new PusherApiError(413, `request body larger than ${MAX_BODY} bytes`);
  }
  const url = new URL(c.req.url);
  const problem = apiSignatureProblem(app, c.req.method, url.pathname, url.searchParams, body);
  if (problem !== null) throw new PusherApiError(401, problem);
  return { app, body };
}

function parse<T>(schema: z.ZodType<T>, body: string): T {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new PusherApiError(400, 'the body is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PusherApiError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

async function publish(app: PusherApp, log: MessageLog, events: z.infer<typeof Event>[]): Promise<void> {
  const messages: NewMessage[] = [];
  for (const event of events) {
    const channels = event.channels ?? (event.channel === undefined ? [] : [event.channel]);
    if (channels.length === 0) throw new PusherApiError(400, 'give channel or channels');
    const bad = channels.find((ch) => !CHANNEL_NAME.test(ch));
    if (bad !== undefined) throw new PusherApiError(400, `invalid channel name ${JSON.stringify(bad.slice(0, 64))}`);
    if (event.data.length > MAX_DATA && new TextEncoder().encode(event.data).length > MAX_DATA) throw new PusherApiError(413, `event data larger than ${MAX_DATA} bytes`);
    const data = storedEvent(event.name, event.data);
    for (const channel of channels) messages.push({ channel: storedChannel(app, channel), data, sender: null, exclude: event.socket_id ? [event.socket_id] : null });
  }
  try {
    await log.publish(messages);
  } catch {
    throw new PusherApiError(503, 'the store is unavailable: nothing was sent');
  }
}
