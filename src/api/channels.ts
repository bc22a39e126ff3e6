/**
 * The server API about channels, cluster-wide: which have subscribers and how
 * many (getAllGroupIdList, getClientCountByGroup), emptying one (ungroup), and
 * its stored messages for a page that loads the last ones, then subscribes
 * with `since`.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { RESERVED_PREFIX, canonicalChannel } from '../core/channels.ts';
import { MeshError } from '../core/errors.ts';
import { commandMessage } from '../core/commands.ts';
import type { Message } from '../core/message.ts';
import type { Cluster } from '../store/cluster.ts';
import type { Store } from '../store/store.ts';
import { queryOf } from './json-body.ts';
import { isCleanText } from '../core/edge-input.ts';
import { MAX_PAGE, Paging, decodeCursor, encodeCursor } from './params.ts';

const ChannelsQuery = z.object({ prefix: z.string().max(255).refine(isCleanText, 'prefix holds a NUL character or a lone surrogate').optional(), ...Paging });
const HistoryQuery = z.object({
  since: z.coerce.number({ error: 'since must be a message id' }).int().nonnegative().optional(),
  limit: Paging.limit,
});

/** A stored message as the API shows it: the `d` string as sent, or a client's data as JSON. */
function shown(m: Message): Record<string, unknown> {
  return m.sender === null ? { id: m.id, data: m.data } : { id: m.id, data: JSON.parse(m.data), uid: m.sender };
}

/** GET /channels, GET /channels/:channel, DELETE /channels/:channel/subscribers, GET /channels/:channel/history. */
export function channelsRoutes(store: Store, cluster: Cluster): Hono {
  const app = new Hono();

  app.get('/channels', async (c) => {
    const q = queryOf(c, ChannelsQuery);
    // $… channels are pgmesh's own and Pusher apps': not this API's to list.
    if (q.prefix?.startsWith(RESERVED_PREFIX)) throw new MeshError('ERR_BAD_CHANNEL', `channel names starting with ${RESERVED_PREFIX} are reserved`);
    const page = await cluster.channels({ prefix: q.prefix, limit: q.limit, after: decodeCursor(q.cursor) });
    return c.json({ channels: page.items, count: page.count, next: encodeCursor(page.next) });
  });

  app.get('/channels/:channel', async (c) => {
    const channel = canonicalChannel(c.req.param('channel'));
    // The listing's page that starts at the channel's own name holds it, if anyone is in it.
    const page = await cluster.channels({ prefix: channel, limit: 1 });
    const found = page.items.find((i) => i.channel === channel);
    return c.json({ channel, occupied: found !== undefined, subscribers: found?.subscribers ?? 0, users: found?.users ?? 0 });
  });

  app.delete('/channels/:channel/subscribers', async (c) => {
    const channel = canonicalChannel(c.req.param('channel'));
    const [id] = await store.publish([commandMessage({ op: 'ungroup', channel })]);
    return c.json({ success: true, id });
  });

  app.get('/channels/:channel/history', async (c) => {
    const channel = canonicalChannel(c.req.param('channel'));
    const { since, limit } = queryOf(c, HistoryQuery);
    if (since === undefined) {
      const { messages, head } = await store.recent(channel, limit);
      return c.json({ channel, messages: messages.map(shown), position: messages.at(-1)?.id ?? head });
    }
    // One more than asked tells whether the page is the last one.
    const head = await store.head();
    const messages = (await store.history(channel, since, Math.min(limit, MAX_PAGE) + 1)).filter((m) => m.id <= head);
    const page = messages.slice(0, limit);
    const more = messages.length > limit;
    return c.json({ channel, messages: page.map(shown), position: more ? page.at(-1)!.id : Math.max(page.at(-1)?.id ?? 0, head, since) });
  });

  return app;
}
