/**
 * The server API about users, cluster-wide: who is online and on which
 * connections (isUidOnline, getClientIdByUid, getAllUidList, getUidListByGroup),
 * putting all of a user's connections into channels or out of them
 * (joinGroup, leaveGroup), and closing them (kick).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import type { Cluster } from '../store/cluster.ts';
import type { Store } from '../store/store.ts';
import { commandRoutes } from './commands.ts';
import { queryOf } from './json-body.ts';
import { Paging, checkChannels, decodeCursor, encodeCursor, pathId } from './params.ts';

const UsersQuery = z.object({ channel: z.string().min(1).max(255).optional(), ...Paging });

/** GET /users, GET /users/:uid, POST /users/:uid/subscribe|unsubscribe, DELETE /users/:uid/connections. */
export function usersRoutes(store: Store, cluster: Cluster, maxDepth: number): Hono {
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

  commandRoutes(app, store, { base: '/users/:uid', closePath: '/users/:uid/connections' }, (c) => ({ uid: pathId(c, 'uid') }), maxDepth);

  return app;
}
