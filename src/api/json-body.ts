/** Reading a server-API request body: JSON, validated by a zod schema, with the error codes every route shares. */
import type { Context } from 'hono';
import type { z } from 'zod';
import { badArgs } from '../core/errors.ts';
import { boundedText } from '../core/request-body.ts';
import { readJson } from '../core/edge-input.ts';

/** The largest body a server-API call other than publish takes (a list of channels, say). */
const SMALL_BODY = 64 * 1024;

/** What a JSON body may be: its bytes, and how deep it nests (MESH_MAX_JSON_DEPTH). */
export interface BodyLimits {
  maxBytes?: number;
  maxDepth: number;
}

/**
 * The request body parsed as JSON and validated; ERR_TOO_LARGE, ERR_BAD_JSON, ERR_TOO_DEEP, ERR_BAD_TEXT or ERR_BAD_ARGS otherwise.
 * `shortcut` may take a common shape without the schema (a hot route's plain case): it answers
 * only for bodies the schema would take to the same value, else undefined.
 */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  limits: BodyLimits,
  shortcut?: (body: unknown) => z.infer<S> | undefined,
): Promise<z.infer<S>> {
  const text = await boundedText(c.req.raw, limits.maxBytes ?? SMALL_BODY);
  const body = readJson(text, limits.maxDepth, 'request body');
  const taken = shortcut?.(body);
  if (taken !== undefined) return taken;
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badArgs(parsed.error.issues);
  return parsed.data;
}

/** Query parameters validated by a zod schema; ERR_BAD_ARGS otherwise. */
export function queryOf<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw badArgs(parsed.error.issues);
  return parsed.data;
}
