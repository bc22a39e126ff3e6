/** The server API about one connection, wherever it is: join or leave channels, close it (closeClient). */
import { Hono } from 'hono';
import type { Store } from '../store/store.ts';
import { commandRoutes } from './commands.ts';
import { pathId } from './params.ts';

/** POST /connections/:id/subscribe|unsubscribe, DELETE /connections/:id. */
export function connectionsRoutes(store: Store): Hono {
  const app = new Hono();
  commandRoutes(app, store, { base: '/connections/:id', closePath: '/connections/:id' }, (c) => ({ connection: pathId(c, 'id') }));
  return app;
}
