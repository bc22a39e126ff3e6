/** The server API about one connection, wherever it is: join or leave channels, close it (closeClient). */
import { Hono } from 'hono';
import type { Store } from '../store/store.ts';
import { commandRoutes } from './commands.ts';
import { connectionId } from './params.ts';

/** POST /connections/:id/subscribe|unsubscribe, DELETE /connections/:id. */
export function connectionsRoutes(store: Store, maxDepth: number): Hono {
  const app = new Hono();
  commandRoutes(app, store, { base: '/connections/:id', closePath: '/connections/:id' }, (c) => ({ connection: connectionId(c, 'id') }), maxDepth);
  return app;
}
