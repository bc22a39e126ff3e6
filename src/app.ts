/**
 * Assembles the Hono app: WebSocket paths, the server API, health, the demo.
 * WebSocket routes are registered before any header-setting middleware (which
 * would throw "Headers are immutable" on an upgrade).
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { MeshError, asMeshError } from './core/errors.ts';
import type { Config } from './config.ts';
import type { RuntimeAdapter } from './runtime/adapter.ts';
import type { Store } from './store/store.ts';
import type { Gateway } from './core/gateway.ts';
import { websocketRoute } from './transport/ws.ts';
import { sseRoutes } from './transport/sse.ts';
import type { Authenticator } from './core/auth.ts';
import type { Hub } from './core/hub.ts';
import { statsRoute } from './api/stats.ts';
import { errorResponse } from './api/errors.ts';
import { answersWithin } from './api/health.ts';
import { serverApiGuard } from './api/guard.ts';
import { publishRoute } from './api/publish.ts';
import { demoRoutes } from './api/demo.ts';
import { usersRoutes } from './api/users.ts';
import { connectionsRoutes } from './api/connections.ts';
import { channelsRoutes } from './api/channels.ts';
import { openApiRoute } from './api/openapi.ts';
import type { Cluster } from './store/cluster.ts';
import { clientAddressOf } from './api/client-address.ts';
import { metricsRoute } from './api/metrics.ts';
import { pusherApiRoutes } from './api/pusher-http.ts';
import { pusherSocketRoute } from './transport/pusher-ws.ts';
import { MERCURE_PATH, mercureHub } from './mercure/mount.ts';
import type { Capacity } from './api/capacity.ts';
import { PusherApps, type PusherApp } from './pusher/apps.ts';
import { pusherTarget } from './store/webhooks.ts';
import type { Metrics } from './metrics.ts';
import type { Log } from './log.ts';
import type { WebhookSenders } from './hooks/webhook-senders.ts';
import { Access } from './console/access.ts';
import { consoleRoutes } from './console/routes.ts';
import { instancesRoutes } from './api/instances.ts';

export const WS_PATH = '/v1/ws';
/** Where the operator's console is served (MESH_CONSOLE). */
export const CONSOLE_PATH = '/console';

/** What the instance's own state says to the balancer: not ready while it drains. */
export interface Readiness {
  draining: boolean;
  /** How many realtime connections this instance takes (see api/capacity.ts). */
  capacity: Capacity;
}

export interface AppParts {
  readiness: Readiness;
  config: Config;
  runtime: RuntimeAdapter;
  gateway: Gateway;
  store: Store;
  cluster: Cluster;
  hub: Hub;
  auth: Authenticator;
  instance: string;
  devSecret: string | undefined;
  metrics: Metrics;
  log: Log;
  /** The webhook senders (pgmesh's and Pusher apps'), for their counts and for client events. */
  webhooks?: WebhookSenders;
  /** The API keys and the console's sessions (made from config when not given). */
  access?: Access;
}

/** Builds the HTTP application. */
export function buildApp(parts: AppParts): Hono {
  const { readiness, config, runtime, gateway, store, cluster, hub, auth, instance, devSecret, metrics, log, webhooks } = parts;
  const access = parts.access ?? new Access(config.MESH_API_KEY, config.MESH_API_READ_KEY);
  const app = new Hono();
  const clientAddress = clientAddressOf(runtime, { onFly: config.FLY_MACHINE_ID !== undefined, trustedProxies: config.MESH_TRUSTED_PROXIES });
  // Every error an HTTP caller gets passes here: counted by code, and logged when it is a bug of ours.
  const answerError = (c: Context, err: unknown) => {
    const e = asMeshError(err);
    metrics.errorReported(e.code);
    // A bug, not a refusal (an outage's 503s are counted, and the outage is logged once by the store).
    if (e.code === 'ERR_INTERNAL') log.error('request failed', { method: c.req.method, path: c.req.path, ip: clientAddress(c), req: c.req.header('x-request-id'), err });
    return errorResponse(c, e);
  };
  app.onError((err, c) => answerError(c, err));
  app.notFound((c) => answerError(c, new MeshError('ERR_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`)));

  const ws = config.MESH_DISABLE_WS
    ? () => {
        throw new MeshError('ERR_FORBIDDEN', 'WebSocket is disabled on this server: use /v1/sse');
      }
    : websocketRoute(gateway, runtime, { maxFrame: config.MESH_MAX_FRAME, clientAddress });
  // A draining instance takes no new realtime connection: the client retries, and lands elsewhere.
  // Nor does one whose client address already holds MESH_MAX_CONNECTIONS_PER_ADDRESS of them (429, before any upgrade).
  const perAddress = config.MESH_MAX_CONNECTIONS_PER_ADDRESS;
  // Full is a state, not a crash: past the capacity a new connection is told to come back (or go
  // elsewhere), so the instance keeps the files its API, health checks and Postgres need.
  const capacity = readiness.capacity.limit;
  let full = false;
  const isFull = () => capacity !== null && hub.size >= capacity;
  const notDraining: MiddlewareHandler = async (c, next) => {
    // A herd of new connections is taken a slice of each turn at a time: the server API is served between.
    if (runtime.upgradesLate || c.req.header('upgrade') === undefined) await gateway.turn();
    if (readiness.draining) throw new MeshError('ERR_DRAINING');
    if (isFull()) {
      metrics.limitReached('full');
      if (!full) log.warn('full: refusing new realtime connections (503 ERR_FULL) until some close', { connections: hub.size, limit: capacity, source: readiness.capacity.source });
      full = true;
      return errorResponse(c, new MeshError('ERR_FULL'), { 'retry-after': String(2 + Math.floor(Math.random() * 8)) });
    }
    if (full) {
      full = false;
      log.info('taking new realtime connections again', { connections: hub.size, limit: capacity });
    }
    const address = perAddress > 0 ? clientAddress(c) : undefined;
    if (address !== undefined && hub.connectionsFrom(address) >= perAddress) {
      metrics.limitReached('per_address');
      throw new MeshError('ERR_LIMIT', `this address already holds ${perAddress} connections (MESH_MAX_CONNECTIONS_PER_ADDRESS)`);
    }
    await next();
  };
  for (const path of [WS_PATH, ...config.MESH_WS_PATHS]) app.get(path, notDraining, ws);
  if (config.PUSHER_APPS.length > 0) {
    const apps = new PusherApps(config.PUSHER_APPS);
    // A client_event webhook is written only for an app whose backend takes them.
    const takesClientEvents = (id: string) => config.PUSHER_WEBHOOK_EVENTS[id]?.has('client_event') ?? true;
    const clientEventHooks = webhooks && {
      target: (pusherApp: PusherApp) => (webhooks.has(pusherTarget(pusherApp.id)) && takesClientEvents(pusherApp.id) ? pusherTarget(pusherApp.id) : null),
    };
    const pusherOptions = {
      maxFrame: config.MESH_MAX_FRAME,
      maxJsonDepth: config.MESH_MAX_JSON_DEPTH,
      idleTimeoutMs: config.MESH_AUTH_TIMEOUT,
      onIdleClosed: () => metrics.limitReached('pusher_idle'),
      clientAddress,
      clientEventHooks,
      clientEventsAllowed: (pusherApp: PusherApp) => config.PUSHER_CLIENT_EVENTS[pusherApp.id] ?? true,
    };
    app.get('/app/:key', notDraining, pusherSocketRoute(gateway, runtime, apps, pusherOptions));
    app.route('/', pusherApiRoutes(apps, store, cluster, config.MESH_MAX_JSON_DEPTH));
  }

  const mercure = mercureHub(config, gateway, store, cluster, runtime, log, clientAddress);
  if (mercure !== null) {
    app.get(MERCURE_PATH, notDraining);
    app.route(MERCURE_PATH, mercure);
  }

  // Pages on other origins (the app on app.example.com, pgmesh on rt.example.com) may use the
  // SSE fallback when their origin is listed; WebSockets need no CORS.
  if (config.MESH_CORS_ORIGINS.length > 0) {
    app.use(
      '/v1/sse/*',
      cors({
        origin: config.MESH_CORS_ORIGINS,
        credentials: true,
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        allowHeaders: ['authorization', 'content-type', 'last-event-id'],
        maxAge: 600,
      }),
    );
  }
  app.get('/v1/sse', notDraining);
  app.route(
    '/v1/sse',
    sseRoutes(gateway, auth, runtime, {
      cookieName: config.MESH_SSE_COOKIE,
      heartbeatMs: config.MESH_SSE_HEARTBEAT,
      retryMs: config.MESH_SSE_RETRY,
      maxFrame: config.MESH_MAX_FRAME,
      clientAddress,
      // fly-replay names machines: usable only while the instance ids are the machine ids (the default on Fly).
      relay: { instance, onFly: config.FLY_MACHINE_ID !== undefined && config.FLY_MACHINE_ID === instance, ownerUrl: (owner) => cluster.instanceUrl(owner) },
    }),
  );

  app.get('/healthz', async (c) => {
    if (await answersWithin(() => store.ping())) return c.json({ ok: true, store: store.kind, listening: store.listening });
    return c.json({ ok: false, store: store.kind, listening: store.listening, code: 'ERR_UNAVAILABLE', error: 'store unreachable' }, 503);
  });

  // What the balancer checks (fly.toml): answering, the store reachable, LISTEN up, not draining.
  // /healthz stays 200 while draining: the instance is healthy, just leaving.
  app.get('/readyz', async (c) => {
    const reasons: string[] = [];
    if (readiness.draining) reasons.push('draining');
    if (isFull()) reasons.push('full');
    if (!store.listening) reasons.push('LISTEN down');
    if (!(await answersWithin(() => store.ping()))) reasons.push('store unreachable');
    if (reasons.length === 0) return c.json({ ready: true });
    const code = readiness.draining ? 'ERR_DRAINING' : reasons.length === 1 && reasons[0] === 'full' ? 'ERR_FULL' : 'ERR_UNAVAILABLE';
    return c.json({ ready: false, reasons, code }, 503);
  });

  // For Prometheus with the API key as its bearer token (or a scraper on this machine); MESH_METRICS_PORT serves it keyless.
  app.use('/metrics', serverApiGuard(access, runtime));
  app.route('/', metricsRoute(metrics.registry));

  // The API's own description is public: it holds nothing but the shape of the routes.
  app.route('/v1/mesh', openApiRoute());
  app.route('/v1/mesh', serverApi({ config, runtime, store, cluster, hub, instance, webhooks, readiness, access }));

  if (config.MESH_CONSOLE) app.route(CONSOLE_PATH, consoleRoutes(access, runtime, { instance, region: config.MESH_REGION }, clientAddress));
  app.route('/', demoRoutes(runtime, devSecret));
  return app;
}

/** The server API's routes behind its guard; `api.routes` is what the OpenAPI document is checked against. */
export function serverApi({ config, runtime, store, cluster, hub, instance, webhooks, readiness, access }: Pick<AppParts, 'config' | 'runtime' | 'store' | 'cluster' | 'hub' | 'instance' | 'webhooks' | 'access'> & { readiness?: Readiness }): Hono {
  const api = new Hono();
  api.use('*', serverApiGuard(access ?? new Access(config.MESH_API_KEY, config.MESH_API_READ_KEY), runtime));
  api.route('/', publishRoute(store, config.MESH_MAX_MESSAGE, config.MESH_MAX_JSON_DEPTH));
  api.route('/', usersRoutes(store, cluster, config.MESH_MAX_JSON_DEPTH));
  api.route('/', connectionsRoutes(store, config.MESH_MAX_JSON_DEPTH));
  api.route('/', channelsRoutes(store, cluster));
  api.route('/', statsRoute(hub, store, instance, webhooks, readiness?.capacity));
  api.route('/', instancesRoutes(cluster, { ttlMs: config.MESH_INSTANCE_TTL, intervalMs: config.MESH_STATS_INTERVAL, pusherApps: config.PUSHER_APPS.map((a) => a.id), webhooks }));
  return api;
}
