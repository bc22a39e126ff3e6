/**
 * The Pusher HTTP API, signed exactly as Pusher verifies it: what the official
 * server libraries and Laravel's Pusher broadcaster call. POST
 * /apps/{id}/events sends one event to up to 100 channels (leaving out
 * `socket_id`: Laravel's toOthers()), POST /apps/{id}/batch_events up to 10
 * events; each is committed to the outbox before the answer. The channel
 * queries read the cluster's presence, so every instance answers the same;
 * terminate_connections closes a user's sockets wherever they are.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { boundedText } from '../core/request-body.ts';
import type { MessageLog, NewMessage } from '../core/message-log.ts';
import { commandMessage } from '../core/commands.ts';
import type { Cluster } from '../store/cluster.ts';
import { memberId, memberUid, pusherChannel, storedChannel, type PusherApp, type PusherApps } from '../pusher/apps.ts';
import { MAX_EVENT_DATA, USER_CHANNEL_PREFIX, isChannelName, storedEvent } from '../pusher/frames.ts';
import { apiSignatureProblem } from '../pusher/signing.ts';
import { isCleanText, readJson } from '../core/edge-input.ts';

/** Pusher's own limits: 10 KB of data per event (MAX_EVENT_DATA), 100 channels per event, 10 events per batch. */
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

/** What `info` asks of a channel. */
interface ChannelAttributes {
  subscription_count?: number;
  user_count?: number;
}

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
export function pusherApiRoutes(apps: PusherApps, log: Pick<MessageLog, 'publish'>, cluster: Pick<Cluster, 'channels' | 'members'>, maxDepth: number): Hono {
  const api = new Hono();
  api.onError((err, c) => (err instanceof PusherApiError ? c.json({ error: err.message, code: err.status }, err.status) : c.json({ error: 'internal error', code: 500 }, 500)));

  api.post('/apps/:appId/events', async (c) => {
    const { app, body } = await signed(c, apps);
    const event = parse(Event, body, maxDepth);
    await publish(app, log, [event]);
    if (event.info === undefined) return c.json({});
    // As Pusher answers a trigger with `info`: each channel's attributes, read after the publish.
    const channels: Record<string, ChannelAttributes> = {};
    for (const name of event.channels ?? [event.channel!]) channels[name] = await attributes(app, name, event.info);
    return c.json({ channels });
  });

  api.post('/apps/:appId/batch_events', async (c) => {
    const { app, body } = await signed(c, apps);
    const { batch } = parse(Batch, body, maxDepth);
    await publish(app, log, batch);
    if (batch.every((e) => e.info === undefined)) return c.json({ batch: [] });
    // One entry per event: the attributes of its channel, when it asked for any.
    return c.json({ batch: await Promise.all(batch.map((e) => (e.info === undefined ? {} : attributes(app, (e.channels ?? [e.channel!])[0]!, e.info)))) });
  });

  /** The attributes `info` asks for (subscription_count; user_count on presence channels), as the cluster has them now. */
  async function attributes(app: PusherApp, name: string, info: string): Promise<ChannelAttributes> {
    const wanted = new Set(info.split(',').map((i) => i.trim()));
    const stored = storedChannel(app, name);
    const found = (await viaStore(() => cluster.channels({ prefix: stored, limit: 1 }))).items.find((i) => i.channel === stored);
    return {
      ...(wanted.has('subscription_count') ? { subscription_count: found?.subscribers ?? 0 } : {}),
      ...(wanted.has('user_count') && name.startsWith('presence-') ? { user_count: found?.users ?? 0 } : {}),
    };
  }

  api.get('/apps/:appId/channels', async (c) => {
    const { app } = await signed(c, apps);
    const prefix = c.req.query('filter_by_prefix') ?? '';
    if (prefix !== '' && !/^[A-Za-z0-9_\-=@,.;#]{1,164}$/.test(prefix)) throw new PusherApiError(400, 'filter_by_prefix is not the start of a channel name');
    const userCount = infoWanted(c).has('user_count');
    if (userCount && !prefix.startsWith('presence-')) throw new PusherApiError(400, 'info=user_count needs filter_by_prefix=presence-');
    const channels: Record<string, { user_count?: number }> = {};
    let after: string | undefined;
    do {
      const page = await viaStore(() => cluster.channels({ prefix: storedChannel(app, prefix), limit: 1000, after }));
      for (const { channel, users } of page.items) {
        const name = pusherChannel(app, channel);
        // A signed-in user's own channel is not one the app made.
        if (!name.startsWith(USER_CHANNEL_PREFIX)) channels[name] = userCount ? { user_count: users } : {};
      }
      after = page.next ?? undefined;
    } while (after !== undefined);
    return c.json({ channels });
  });

  api.get('/apps/:appId/channels/:channel', async (c) => {
    const { app } = await signed(c, apps);
    const name = channelParam(c);
    const info = infoWanted(c);
    if (info.has('user_count') && !name.startsWith('presence-')) throw new PusherApiError(400, 'user_count is only for presence channels');
    const stored = storedChannel(app, name);
    const page = await viaStore(() => cluster.channels({ prefix: stored, limit: 1 }));
    const found = page.items.find((i) => i.channel === stored);
    return c.json({
      occupied: found !== undefined,
      ...(info.has('user_count') ? { user_count: found?.users ?? 0 } : {}),
      ...(info.has('subscription_count') ? { subscription_count: found?.subscribers ?? 0 } : {}),
    });
  });

  api.get('/apps/:appId/channels/:channel/users', async (c) => {
    const { app } = await signed(c, apps);
    const name = channelParam(c);
    if (!name.startsWith('presence-')) throw new PusherApiError(400, 'users are listed for presence channels only');
    const { uids } = await viaStore(() => cluster.members(storedChannel(app, name)));
    return c.json({ users: uids.map((uid) => ({ id: memberId(app, uid) })) });
  });

  api.post('/apps/:appId/users/:userId/terminate_connections', async (c) => {
    const { app } = await signed(c, apps);
    const userId = c.req.param('userId')!;
    if (!isCleanText(userId) || userId.length > 200) throw new PusherApiError(400, 'not a user id');
    const target = { uid: memberUid(app, userId) };
    await viaStore(() => log.publish([commandMessage({ op: 'close', target, reason: 'terminated by the app' })]));
    return c.json({});
  });
  return api;
}

/** The channel named in the path; 400 unless it is a channel name. */
function channelParam(c: Context): string {
  const name = c.req.param('channel') ?? '';
  if (!isChannelName(name)) throw new PusherApiError(400, `invalid channel name ${JSON.stringify(name.slice(0, 64))}`);
  return name;
}

function infoWanted(c: Context): Set<string> {
  return new Set((c.req.query('info') ?? '').split(',').filter((i) => i !== ''));
}

/** A read or write of the cluster's state; a database failure is Pusher's 503. */
async function viaStore<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch {
    throw new PusherApiError(503, 'the store is unavailable');
  }
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

function parse<T>(schema: z.ZodType<T>, body: string, maxDepth: number): T {
  let json: unknown;
  try {
    json = readJson(body, maxDepth, 'body');
  } catch (err) {
    throw new PusherApiError(400, err instanceof Error ? err.message : 'the body is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PusherApiError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

async function publish(app: PusherApp, log: Pick<MessageLog, 'publish'>, events: z.infer<typeof Event>[]): Promise<void> {
  const messages: NewMessage[] = [];
  for (const event of events) {
    const channels = event.channels ?? (event.channel === undefined ? [] : [event.channel]);
    if (channels.length === 0) throw new PusherApiError(400, 'give channel or channels');
    const bad = channels.find((ch) => !isChannelName(ch));
    if (bad !== undefined) throw new PusherApiError(400, `invalid channel name ${JSON.stringify(bad.slice(0, 64))}`);
    if (event.data.length > MAX_EVENT_DATA && new TextEncoder().encode(event.data).length > MAX_EVENT_DATA) throw new PusherApiError(413, `event data larger than ${MAX_EVENT_DATA} bytes`);
    const data = storedEvent(event.name, event.data);
    for (const channel of channels) messages.push({ channel: storedChannel(app, channel), data, sender: null, exclude: event.socket_id ? [event.socket_id] : null });
  }
  try {
    await log.publish(messages);
  } catch {
    throw new PusherApiError(503, 'the store is unavailable: nothing was sent');
  }
}
