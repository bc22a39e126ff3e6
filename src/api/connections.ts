/** The server API about one connection, wherever it is: join or leave channels, close it (closeClient). */
import { Hono } from 'hono';
import { commandMessage } from '../core/commands.ts';
import type { Store } from '../store/store.ts';
import { jsonBody, queryOf } from './json-body.ts';
import { ChannelList, checkChannels, pathId } from './params.ts';
import { CloseQuery } from './users.ts';

/** POST /connections/:id/subscribe|unsubscribe, DELETE /connections/:id. */
export function connectionsRoutes(store: Store): Hono {
  const app = new Hono();

  for (const op of ['subscribe', 'unsubscribe'] as const) {
    app.post(`/connections/:id/${op}`, async (c) => {
      const connection = pathId(c, 'id');
      const { channels } = await jsonBody(c, ChannelList);
      checkChannels(channels);
      const [id] = await store.publish([commandMessage({ op, target: { connection }, channels })]);
      return c.json({ success: true, id });
    });
  }

  app.delete('/connections/:id', async (c) => {
    const connection = pathId(c, 'id');
    const { reason } = queryOf(c, CloseQuery);
    const [id] = await store.publish([commandMessage({ op: 'close', target: { connection }, reason })]);
    return c.json({ success: true, id });
  });

  return app;
}
