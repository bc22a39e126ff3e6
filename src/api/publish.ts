/**
 * POST /v1/mesh/publish — how application servers (a PHP app under php-fpm,
 * say) send messages. Takes connmix `{"c","d"}`, `{"channel","data"}`,
 * `{"all":true,"d"}` (every live connection), or an array of them; each may
 * name connections to leave out (`"exclude"`). Answers with the stored ids
 * once they are committed.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { ALL_CHANNEL, canonicalChannel } from '../core/channels.ts';
import { MeshError } from '../core/errors.ts';
import type { MessageLog } from '../core/message-log.ts';
import { jsonBody } from './json-body.ts';
import { isConnectionId } from '../core/session.ts';

const MAX_BATCH = 1000;

// `d` / `data` is delivered verbatim when it is a string, else as its JSON text.
const text = z.unknown().refine((v) => v !== undefined, 'is required').transform((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
const exclude = z
  .array(z.string().refine(isConnectionId, 'exclude holds something that is not a connection id'), { error: 'exclude must be a list of connection ids' })
  .max(1000)
  .optional();
const ConnmixItem = z.object({ c: z.string({ error: 'c must be a string' }), d: text, exclude }).transform((m) => ({ channel: m.c, data: m.d, exclude: m.exclude }));
const NamedItem = z.object({ channel: z.string({ error: 'channel must be a string' }), data: text, exclude });
const AllItem = z
  .strictObject({ all: z.literal(true), d: text.optional(), data: text.optional(), exclude })
  .refine((m) => (m.d === undefined) !== (m.data === undefined), 'give d or data')
  .transform((m) => ({ channel: ALL_CHANNEL, data: (m.d ?? m.data)!, exclude: m.exclude, all: true as const }));
const Item = z.union([ConnmixItem, NamedItem, AllItem], { error: 'expected {"c","d"}, {"channel","data"} or {"all":true,"d"}' });
export const PublishBody = z.union([Item, z.array(Item).min(1, 'empty batch').max(MAX_BATCH, `at most ${MAX_BATCH} messages per request`)]);
export type PublishBody = z.infer<typeof PublishBody>;

const encoder = new TextEncoder();

/**
 * The body nearly every publisher sends, one `{"c": string, "d": string}`, read without zod (whose
 * union was about 4% of a single publish's CPU on Node). Any other body, extra keys included,
 * goes through PublishBody.
 */
function plainConnmix(body: unknown): PublishBody | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const { c, d } = body as Record<string, unknown>;
  if (typeof c !== 'string' || typeof d !== 'string') return undefined;
  for (const key in body) if (key !== 'c' && key !== 'd') return undefined;
  return { channel: c, data: d, exclude: undefined };
}

/** The publish route; mount it behind the server-API guard. */
export function publishRoute(store: Pick<MessageLog, 'publish'>, maxMessage: number, maxDepth: number): Hono {
  const app = new Hono();
  app.post('/publish', async (c) => {
    const body = await jsonBody(c, PublishBody, { maxBytes: 8 * maxMessage, maxDepth }, plainConnmix);
    const items = Array.isArray(body) ? body : [body];
    const messages = items.map((item) => {
      const channel = 'all' in item ? item.channel : canonicalChannel(item.channel);
      if (item.data.length > maxMessage || encoder.encode(item.data).length > maxMessage) {
        throw new MeshError('ERR_TOO_LARGE', `message on ${channel} larger than ${maxMessage} bytes`);
      }
      return { channel, data: item.data, sender: null, exclude: item.exclude?.length ? item.exclude : null };
    });
    const ids = await store.publish(messages);
    return c.json({ success: true, ids, ...(Array.isArray(body) ? {} : { id: ids[0] }) });
  });
  return app;
}
