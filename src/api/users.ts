/**
 * The server API about users, cluster-wide: who is online and on which
 * connections (isUidOnline, getClientIdByUid, getAllUidList, getUidListByGroup),
 * putting all of a user's connections into channels or out of them
 * (joinGroup, leaveGroup), and closing them (kick).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { commandMessage } from '../core/commands.ts';
import type { Cluster } from '../store/cluster.ts';
import type { Store } from '../store/store.ts';
import { jsonBody, queryOf } from './json-body.ts';
import { ChannelList, Paging, checkChannels, pathId, decodeCursor, encodeCursor } from './params.ts';

const UsersQuery = z.object({ channel: z.string().min(1).max(255).optional(), ...Paging });
export const CloseQuery = z.object({ reason: z.string().max(120, 'reason at most 120 characters').default('closed by the server') });

/** GET /users, GET /users/:uid, POST /users/:uid/subscribe|unsubscribe, DELETE /users/:uid/connections. */
export function usersRoutes(store: Store, cluster: Cluster): Hono {
  const app = new Hono();

  app.get('/users', async (c) => {
    const q = queryOf(c, UsersQuery);
    if (q.channel !== undefined) checkChannels([q.channel]);
    const page = await cluster.users({ channel: q.channel, limit: q.limit, after: decodeCursor(q.cursor) });
    return c.json({ users: page.items, count: page.count, next: encodeCursor(page.next) });
  });

  app.get('/users/:uid', async (c) => {
    const uid = pathId(c, 'uid');
    const connections = await cluster.user(uid);
    return c.json({ uid, online: connections.length > 0, connections });
  });

  for (const op of ['subscribe', 'unsubscribe'] as const) {
    app.post(`/users/:uid/${op}`, async (c) => {
      const uid = pathId(c, 'uid');
      const { channels } = await jsonBody(c, ChannelList);
      checkChannels(channels);
      const [id] = await store.publish([commandMessage({ op, target: { uid }, channels })]);
      return c.json({ success: true, id });
    });
  }

  app.delete('/users/:uid/connections', async (c) => {
    const uid = pathId(c, 'uid');
    const { reason } = queryOf(c, CloseQuery);
    const [id] = await store.publish([commandMessage({ op: 'close', target: { uid }, reason })]);
    return c.json({ success: true, id });
  });

  return app;
}
