/**
 * POST /v1/mesh/publish — how application servers (a PHP app under php-fpm,
 * say) send messages. Takes connmix `{"c","d"}`, `{"channel","data"}`, or an
 * array of either; answers with the stored ids once they are committed.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { assertChannelName } from '../core/channels.ts';
import { MeshError, badArgs } from '../core/errors.ts';
import type { Store } from '../store/store.ts';

const MAX_BATCH = 1000;

// `d` / `data` is delivered verbatim when it is a string, else as its JSON text.
const text = z.unknown().refine((v) => v !== undefined, 'is required').transform((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
const ConnmixItem = z.object({ c: z.string({ error: 'c must be a string' }), d: text }).transform((m) => ({ channel: m.c, data: m.d }));
const NamedItem = z.object({ channel: z.string({ error: 'channel must be a string' }), data: text });
const Item = z.union([ConnmixItem, NamedItem], { error: 'expected {"c","d"} or {"channel","data"}' });
export const PublishBody = z.union([Item, z.array(Item).min(1, 'empty batch').max(MAX_BATCH, `at most ${MAX_BATCH} messages per request`)]);
export type PublishBody = z.infer<typeof PublishBody>;

const encoder = new TextEncoder();

/** The publish route; mount it behind the server-API guard. */
export function publishRoute(store: Store, maxMessage: number): Hono {
  const app = new Hono();
  app.post(
    '/publish',
    bodyLimit({
      maxSize: 8 * maxMessage,
      onError: () => {
        throw new MeshError('ERR_TOO_LARGE', `request body larger than ${8 * maxMessage} bytes`);
      },
    }),
    async (c) => {
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        throw new MeshError('ERR_BAD_JSON', 'request body is not valid JSON');
      }
      const parsed = PublishBody.safeParse(body);
      if (!parsed.success) throw badArgs(parsed.error.issues);
      const items = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
      for (const item of items) {
        assertChannelName(item.channel);
        if (item.data.length > maxMessage || encoder.encode(item.data).length > maxMessage) {
          throw new MeshError('ERR_TOO_LARGE', `message on ${item.channel} larger than ${maxMessage} bytes`);
        }
      }
      const ids = await store.publish(items.map((m) => ({ channel: m.channel, data: m.data, sender: null })));
      return c.json({ success: true, ids, ...(Array.isArray(parsed.data) ? {} : { id: ids[0] }) });
    },
  );
  return app;
}
