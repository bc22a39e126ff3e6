/**
 * The routes that send a command to connections wherever they are (see
 * core/commands.ts): join or leave channels, close. Users and single
 * connections take the same three, with a different target.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { commandMessage, type CommandTarget } from '../core/commands.ts';
import type { Store } from '../store/store.ts';
import { jsonBody, queryOf } from './json-body.ts';
import { ChannelList, checkChannels } from './params.ts';
import { isCleanText } from '../core/edge-input.ts';

// A WebSocket close frame carries 123 bytes of reason: longer ones are cut (on a character boundary) when sent.
const CloseQuery = z.object({
  reason: z.string().max(120, 'reason at most 120 characters').refine(isCleanText, 'reason holds a NUL character or a lone surrogate').default('closed by the server'),
});

/** Registers POST `<base>/subscribe`, POST `<base>/unsubscribe` and DELETE `<closePath>` on `app`. */
export function commandRoutes(app: Hono, store: Store, paths: { base: string; closePath: string }, targetOf: (c: Context) => CommandTarget, maxDepth: number): void {
  for (const op of ['subscribe', 'unsubscribe'] as const) {
    app.post(`${paths.base}/${op}`, async (c) => {
      const target = targetOf(c);
      const { channels } = await jsonBody(c, ChannelList, { maxDepth });
      checkChannels(channels);
      const [id] = await store.publish([commandMessage({ op, target, channels })]);
      return c.json({ success: true, id });
    });
  }
  app.delete(paths.closePath, async (c) => {
    const target = targetOf(c);
    const { reason } = queryOf(c, CloseQuery);
    const [id] = await store.publish([commandMessage({ op: 'close', target, reason })]);
    return c.json({ success: true, id });
  });
}
