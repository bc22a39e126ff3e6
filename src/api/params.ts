/** The shapes server-API routes share: ids in paths, channel lists, paging. */
import { z } from 'zod';
import { canonicalChannel } from '../core/channels.ts';
import type { Context } from 'hono';
import { MeshError, badArgs } from '../core/errors.ts';
import { isCleanText, isIdText } from '../core/edge-input.ts';
import { isConnectionId } from '../core/session.ts';

export const MAX_PAGE = 1000;

const PathId = z
  .string()
  .min(1, 'is empty')
  .max(255, 'longer than 255 characters')
  .refine(isIdText, 'holds a control character or a lone surrogate');

/** A uid from the path; ERR_BAD_ARGS when it is not one. */
export function pathId(c: Context, name: string): string {
  const parsed = PathId.safeParse(c.req.param(name));
  if (!parsed.success) throw badArgs(parsed.error.issues, `${name}: `);
  return parsed.data;
}

/** A connection id from the path; ERR_BAD_ARGS unless it has the shape pgmesh gives ids. */
export function connectionId(c: Context, name: string): string {
  const id = c.req.param(name) ?? '';
  if (!isConnectionId(id)) throw new MeshError('ERR_BAD_ARGS', `${name}: not a connection id`);
  return id;
}

/** `{"channels":[...]}`, each a name a client could subscribe to (`user_<uid>` included, `$…` refused). */
export const ChannelList = z.object({
  channels: z
    .array(z.string({ error: 'channels must be strings' }), { error: 'channels must be a list of names' })
    .min(1, 'no channel given')
    .max(256, 'at most 256 channels'),
});

/** Throws ERR_BAD_CHANNEL for any name a client could not use. */
export function checkChannels(names: readonly string[]): void {
  for (const name of names) canonicalChannel(name);
}

/** `?limit=&cursor=` of a listing. */
export const Paging = {
  limit: z.coerce.number({ error: 'limit must be a number' }).int().min(1).max(MAX_PAGE, `limit at most ${MAX_PAGE}`).default(100),
  cursor: z.string().max(1024).regex(/^[\w-]*$/, 'cursor: not one a page gave out').optional(),
};

/** The opaque cursor of the page after `key`. */
export function encodeCursor(key: string | null): string | null {
  return key === null ? null : Buffer.from(key, 'utf8').toString('base64url');
}

/** The key a cursor stands for (an unknown cursor just starts past whatever it decodes to); ERR_BAD_ARGS for one no page gave out. */
export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isCleanText(key)) throw new MeshError('ERR_BAD_ARGS', 'cursor: not one a page gave out');
  return key;
}
