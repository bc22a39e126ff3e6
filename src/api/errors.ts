/** How the HTTP side reports a MeshError: its status, and a JSON body with the stable code. */
import type { Context } from 'hono';
import { asMeshError } from '../core/errors.ts';

/** The JSON error response for anything thrown on an HTTP route. */
export function errorResponse(c: Context, err: unknown, headers?: Record<string, string>): Response {
  const e = asMeshError(err);
  return c.json({ success: false, code: e.code, error: e.message, ...e.detail }, e.http, headers);
}
