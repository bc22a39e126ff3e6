/**
 * POST /.well-known/mercure: a publisher's update, checked against its token and
 * published on `$mercure`. Mounted by the hub on the main port and, with
 * MESH_PUBLISH_PORT and MERCURE_PUBLIC_URL, by the publish thread.
 */
import { Hono } from 'hono';
import { MeshError } from '../core/errors.ts';
import type { MessageLog } from '../core/message-log.ts';
import { boundedText } from '../core/request-body.ts';
import { MercureError } from './errors.ts';
import { mayPublish, type MercureGrants } from './grants.ts';
import { corsHeaders, hubOf, mercureErrorHandler, tokenOf } from './request.ts';
import { eventId, MERCURE_CHANNEL, updateFromForm } from './update.ts';

/** What publishing needs of the hub's settings. */
export interface MercurePublishOptions {
  grants: MercureGrants;
  corsOrigins: readonly string[];
  versions: ReadonlySet<'1' | '0'>;
  publicUrl?: string;
  audience?: string;
  /** The largest update body accepted, in bytes. */
  maxBody: number;
}

/** The publish routes (and their CORS preflight), to mount at /.well-known/mercure. */
export function mercurePublishRoutes(log: Pick<MessageLog, 'publish'>, options: MercurePublishOptions): Hono {
  const app = new Hono();
  app.onError(mercureErrorHandler(options.corsOrigins));

  app.options('/', (c) => {
    const cors = corsHeaders(c, options.corsOrigins);
    if (Object.keys(cors).length === 0) return c.body(null, 204);
    return c.body(null, 204, { ...cors, 'access-control-allow-methods': 'GET, POST', 'access-control-allow-headers': 'authorization, content-type, last-event-id, cache-control', 'access-control-max-age': '600' });
  });

  app.post('/', async (c) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^application\/x-www-form-urlencoded\b/i.test(type)) throw MercureError.badRequest('an update is an application/x-www-form-urlencoded POST');
    const hub = hubOf(c, options);
    const token = tokenOf(c, options.versions);
    if (token === undefined) throw MercureError.noToken('publishing needs an access token');
    const grant = await options.grants.verify(token, 'publisher', hub);
    let body: string;
    try {
      body = await boundedText(c.req.raw, options.maxBody);
    } catch (err) {
      if (err instanceof MeshError && err.code === 'ERR_TOO_LARGE') throw new MercureError(413, `an update is at most ${options.maxBody} bytes`);
      throw err;
    }
    const update = updateFromForm(new URLSearchParams(body), hub.hubUrl);
    if (!mayPublish(grant, update.t)) throw MercureError.insufficientScope('the token does not grant publishing to every topic of this update');
    const [id] = await log.publish([{ channel: MERCURE_CHANNEL, data: JSON.stringify(update), sender: null }]);
    return c.body(eventId(update, id!), 200, { 'content-type': 'text/plain; charset=utf-8', ...corsHeaders(c, options.corsOrigins) });
  });

  return app;
}
