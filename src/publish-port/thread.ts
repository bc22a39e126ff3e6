/**
 * The publish thread (MESH_PUBLISH_PORT): POST /v1/mesh/publish, the Pusher HTTP
 * API where PUSHER_APPS is set, and Mercure's POST /.well-known/mercure where the
 * hub is on with MERCURE_PUBLIC_URL, served on a port and an event loop of its
 * own, with its own connection to Postgres and no LISTEN. A connect or
 * reconnect storm keeps the instance's main loop busy for seconds; a publish
 * sent here never waits for a turn of that loop, nor for the storm's
 * notifications. It answers exactly as the main port does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Hono, type Context } from 'hono';
import { publishRoute } from '../api/publish.ts';
import { pusherApiRoutes } from '../api/pusher-http.ts';
import { PusherApps, type PusherApp } from '../pusher/apps.ts';
import { serverApiGuard } from '../api/guard.ts';
import { errorResponse } from '../api/errors.ts';
import { answersWithin } from '../api/health.ts';
import { Access } from '../console/access.ts';
import { MeshError, asMeshError } from '../core/errors.ts';
import { createLog, type LogFormat, type LogLevel } from '../log.ts';
import { loadRuntime } from '../runtime/detect.ts';
import { openPublisher, type PostgresEndpoint, type PublishConnection } from '../store/open.ts';
import { OutageLog } from '../outage-log.ts';
import { mercurePublishing, type MercurePublishSettings } from '../mercure/publishing.ts';
import { HUB_PATH as MERCURE_PATH } from '../mercure/request.ts';
import type { FromPublishThread, PublishTally, ToPublishThread } from './messages.ts';

/** What the instance hands its publish thread. */
export interface PublishThreadData {
  endpoint: PostgresEndpoint;
  instance: string;
  region?: string;
  hostname: string;
  port: number;
  apiKey?: string;
  readKey?: string;
  maxMessage: number;
  maxJsonDepth: number;
  groupCommit: boolean;
  /** MESH_INSTANCE_TTL: which instances the presence reads count as alive. */
  ttlMs: number;
  pusherApps: PusherApp[];
  /** Where Mercure updates are taken too (a hub, and MERCURE_PUBLIC_URL set). */
  mercure: MercurePublishSettings | null;
  log: { level: LogLevel; format: LogFormat };
}

/** How often the thread tells the instance what it did (for /metrics). */
const TALLY_MS = 1000;

const data = workerData as PublishThreadData;
const port = parentPort!;
const tell = (message: FromPublishThread) => port.postMessage(message);

const log = createLog({ level: data.log.level, format: data.log.format, instance: data.instance, region: data.region }).child({ thread: 'publish' });
const runtime = await loadRuntime();
let tally = emptyTally();
// A bug on one request's path must not end the thread (nor leave the port dead): logged, counted, and it goes on.
runtime.onUncaught((kind, err) => {
  tally.uncaught.push(kind);
  log.error(kind === 'rejection' ? 'unhandled rejection' : 'uncaught exception', { err });
});
const database = new OutageLog('database', log);

let opened: PublishConnection | undefined;
try {
  opened = await openPublisher(data.endpoint, {
    instanceId: data.instance,
    ttlMs: data.ttlMs,
    groupCommit: data.groupCommit,
    observer: {
      published: (count, seconds) => {
        tally.published.push([count, seconds]);
        database.healthy();
      },
      committed: (size) => void tally.committed.push(size),
      refused: () => void tally.refused++,
    },
  });
  const app = new Hono();
  // Every error a caller gets passes here, counted by code as the main port counts its own.
  const answerError = (c: Context, err: unknown) => {
    const e = asMeshError(err);
    tally.errors[e.code] = (tally.errors[e.code] ?? 0) + 1;
    if (e.code === 'ERR_UNAVAILABLE') database.failed(err);
    if (e.code === 'ERR_INTERNAL') log.error('request failed', { method: c.req.method, path: c.req.path, err });
    return errorResponse(c, e);
  };
  app.onError((err, c) => answerError(c, err));
  const served = ['POST /v1/mesh/publish', ...(data.pusherApps.length > 0 ? ['the Pusher HTTP API'] : []), ...(data.mercure ? [`POST ${MERCURE_PATH}`] : []), 'GET /healthz'];
  app.notFound((c) => answerError(c, new MeshError('ERR_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}: the publish port serves ${served.slice(0, -1).join(', ')} and ${served.at(-1)}`)));
  const { ping, publisher, presence, close } = opened;
  app.get('/healthz', async (c) => {
    if (!(await answersWithin(ping))) return c.json({ ok: false, store: 'postgres', serves: 'publish', code: 'ERR_UNAVAILABLE', error: 'store unreachable' }, 503);
    database.healthy();
    return c.json({ ok: true, store: 'postgres', serves: 'publish' });
  });
  app.use('/v1/mesh/*', serverApiGuard(new Access(data.apiKey, data.readKey), runtime));
  app.route('/v1/mesh', publishRoute(publisher, data.maxMessage, data.maxJsonDepth));
  if (data.pusherApps.length > 0) app.route('/', pusherApiRoutes(new PusherApps(data.pusherApps), publisher, presence, data.maxJsonDepth));
  if (data.mercure) app.route(MERCURE_PATH, mercurePublishing(data.mercure, publisher, (why) => log.info('mercure token refused', { why })));

  const server = await runtime.serve(app.fetch, { hostname: data.hostname, port: data.port, maxFrame: 0, maxBuffered: 0 });
  const ticker = setInterval(sendTally, TALLY_MS);
  port.on('message', (message: ToPublishThread) => {
    if (message.type !== 'stop') return;
    void (async () => {
      clearInterval(ticker);
      await server.stop().catch((err: unknown) => log.warn('publish port did not close cleanly', { err }));
      await close().catch((err: unknown) => log.warn('publish connection did not close cleanly', { err }));
      sendTally();
      tell({ type: 'stopped' });
    })();
  });
  log.info('publish port listening', { port: server.port, pusherApps: data.pusherApps.length });
  tell({ type: 'listening', port: server.port });
} catch (err) {
  // The port taken, say: the connection opened for it goes too.
  await opened?.close().catch(() => {});
  tell({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
}

function sendTally(): void {
  if (tally.published.length === 0 && tally.committed.length === 0 && tally.refused === 0 && tally.uncaught.length === 0 && Object.keys(tally.errors).length === 0) return;
  tell({ type: 'tally', tally });
  tally = emptyTally();
}

function emptyTally(): PublishTally {
  return { published: [], committed: [], refused: 0, errors: {}, uncaught: [] };
}
