/**
 * Starts one pgmesh instance from a Config: opens the store, wires the feed
 * into the hub, builds the app and serves it on a runtime adapter. Returns a
 * handle that drains and stops it. main.ts calls this; so do the tests.
 */
import { hostname } from 'node:os';
import { Authenticator } from './core/auth.ts';
import { Gateway, type SessionObserver } from './core/gateway.ts';
import { CloseCode, disconnectReason, type Session } from './core/session.ts';
import { Hub } from './core/hub.ts';
import type { Config } from './config.ts';
import { buildApp, type Readiness } from './app.ts';
import { createLog, formatFor, type Log } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { metricsRoute } from './api/metrics.ts';
import { RpcClient } from './hooks/rpc-client.ts';
import { WebhookSender, meshWebhookFormat } from './hooks/webhook-sender.ts';
import { WebhookSenders } from './hooks/webhook-senders.ts';
import { capacityOf } from './api/capacity.ts';
import { openFileLimit } from './runtime/open-files.ts';
import { pusherWebhookFormat, type PusherWebhookEvent } from './pusher/webhooks.ts';
import { MESH_TARGET, pusherTarget, type WebhookTargets } from './store/webhooks.ts';
import { OutageLog } from './outage-log.ts';
import type { RuntimeAdapter } from './runtime/adapter.ts';
import { PublishThread } from './publish-port/host.ts';
import { loadRuntime } from './runtime/detect.ts';
import { openStore, type OpenStore } from './store/open.ts';
import type { Cluster, LocalConnection } from './store/cluster.ts';
import { readCommand } from './core/commands.ts';
import type { Store } from './store/store.ts';
import { InstanceSampler } from './console/sampler.ts';
import { Access } from './console/access.ts';
import { CONSOLE_UID } from './core/auth.ts';
import { RecentProblems } from './console/recent-problems.ts';
import { readFile } from 'node:fs/promises';
import { mercurePublishSettings } from './mercure/publishing.ts';

export interface RunningMesh {
  port: number;
  url: string;
  runtime: RuntimeAdapter['name'];
  store: Store;
  cluster: Cluster;
  hub: Hub;
  metrics: Metrics;
  log: Log;
  /** The publish thread's port (MESH_PUBLISH_PORT), when there is one. */
  publishThread: PublishThread | null;
  /** Closes every connection (1001), flushes cursors, closes the store. */
  stop(): Promise<void>;
  /**
   * Leaves the cluster without a stampede: /readyz turns 503 and new realtime connections are
   * refused, the clients are closed with 1012 spread over MESH_DRAIN_TIME (each reconnects, to
   * another instance), then stop().
   */
  drain(): Promise<void>;
}

/** How often natively fanned-out sockets are checked for a slow consumer. */
const BACKLOG_CHECK_MS = 500;
/** The drain closes a slice of the clients this often. */
const DRAIN_STEP_MS = 50;

export interface StartOptions {
  runtime?: RuntimeAdapter;
  log?: Log;
  /** Also told of every session's lifecycle (tests wait on it). */
  observers?: SessionObserver[];
  /** Token expiries further off get their timer from a sweep (default 60 s; tests shorten it). */
  expiryHorizonMs?: number;
}

/** Starts an instance; resolves once it is listening. */
export async function startMesh(config: Config, options: StartOptions = {}): Promise<RunningMesh> {
  // Connection ids start with it (and fly-replay names it): the host name is kept to the alphabet of MESH_INSTANCE_ID.
  const instance = config.MESH_INSTANCE_ID ?? `${hostname().replace(/[^\w.-]/g, '-').slice(0, 32)}-${process.pid}`;
  // Warnings and errors are also kept for the instance's report (the console's Problems panel).
  const recent = new RecentProblems();
  const log = recent.tee(options.log ?? createLog({ level: config.MESH_LOG, format: formatFor(config.MESH_LOG_FORMAT), instance, region: config.MESH_REGION }));
  const runtime = options.runtime ?? (await loadRuntime());
  const metrics = createMetrics({ instance, region: config.MESH_REGION, runtime: runtime.name });
  const database = new OutageLog('database', log);
  // The webhook senders need the opened store's connections; the store's publishes need the senders' bounds.
  let webhooks: WebhookSenders | undefined;
  const hookTargets: WebhookTargets = { bounds: () => webhooks?.bounds() ?? {}, wrote: (target, produced, written) => webhooks?.wrote(target, produced, written) };
  const opened = await openStore({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.MESH_DATA_DIR,
    embedded: config.MESH_EMBEDDED,
    retentionMs: config.MESH_RETENTION,
    instanceId: instance,
    heartbeatMs: config.MESH_HEARTBEAT,
    groupCommit: config.MESH_GROUP_COMMIT,
    maxMessage: config.MESH_MAX_MESSAGE,
    onError: database.failed,
    onHealthy: database.healthy,
    observer: metrics.store,
    hooks: hookTargets,
  });
  const store = opened.store;
  await store.start();

  const hub = new Hub((err) => log.error('delivery failed', { err }));
  metrics.watch(hub, store);
  store.onMessages((batch) => hub.deliver(batch));
  webhooks = webhookSenders(config, opened, log, metrics);
  if (webhooks.size > 0) metrics.watchWebhooks(() => webhooks.total());
  const said: SaidInChannels = new WeakMap();
  const cluster = opened.cluster({
    instance,
    region: config.MESH_REGION,
    ttlMs: config.MESH_INSTANCE_TTL,
    local: () => localConnections(hub, said),
    onError: database.failed,
    onHealthy: database.healthy,
    onRefused: (err) => {
      metrics.dataRefused('presence');
      log.warn('presence changes of a connection refused by the database: dropped', { err });
    },
    ...(webhooks.size > 0 && { hooks: hookTargets }),
  });
  await cluster.start();
  webhooks.start();
  const capacity = capacityOf(config.MESH_MAX_CONNECTIONS, openFileLimit());
  const readiness: Readiness = { draining: false, capacity };
  const sampler = new InstanceSampler({
    version: await pgmeshVersion(),
    runtime,
    hub,
    store,
    cluster,
    tally: metrics.tally,
    recent,
    webhooks: webhooks.size > 0 ? webhooks : undefined,
    draining: () => readiness.draining,
    capacity: capacity.limit,
    intervalMs: config.MESH_STATS_INTERVAL,
  });
  sampler.start();

  const devSecret = devSecretIfNoAuth(config, log);
  const access = new Access(config.MESH_API_KEY, config.MESH_API_READ_KEY);
  const auth = new Authenticator({
    ...(config.MESH_CONSOLE && { consoleKey: access.signingKey }),
    jwtSecret: config.JWT_SECRET ?? devSecret,
    jwksUrl: config.JWKS_URL,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    authUrl: config.AUTH_URL,
    requireExp: config.JWT_REQUIRE_EXP,
    maxJsonDepth: config.MESH_MAX_JSON_DEPTH,
  });
  const gateway = new Gateway({
    hub,
    log: store,
    auth,
    instance,
    region: config.MESH_REGION,
    authTimeoutMs: config.MESH_AUTH_TIMEOUT,
    observer: everyOf([presenceOf(cluster, said), lifecycleLog(log), slowConsumers(metrics), ...(options.observers ?? [])]),
    members: cluster,
    presenceWritten: () => cluster.settled(),
    maxMessage: config.MESH_MAX_MESSAGE,
    maxJsonDepth: config.MESH_MAX_JSON_DEPTH,
    maxSubscriptions: config.MESH_MAX_SUBSCRIPTIONS,
    maxFramesPerSecond: config.MESH_MAX_FRAMES_PER_SECOND,
    maxConnectionsPerUser: config.MESH_MAX_CONNECTIONS_PER_USER,
    onLimit: metrics.limitReached,
    maxBuffered: config.MESH_MAX_BUFFERED,
    expiryHorizonMs: options.expiryHorizonMs,
    onError: (err) => log.error('op failed', { err }),
    onErrorReply: metrics.errorReported,
    backend: config.MESH_RPC_URL
      ? new RpcClient({ url: config.MESH_RPC_URL, secret: config.MESH_WEBHOOK_SECRET!, timeoutMs: config.MESH_RPC_TIMEOUT, instance, maxJsonDepth: config.MESH_MAX_JSON_DEPTH, onAnswer: metrics.rpcAnswered })
      : undefined,
  });
  hub.onCommand((message) => {
    const command = readCommand(message.data);
    if (command) gateway.command(command);
    else log.warn('ignored a command this version does not know', { id: message.id });
  });
  if (capacity.limit !== null) log.info('connection capacity', { limit: capacity.limit, source: capacity.source });
  const app = buildApp({ readiness, config, runtime, gateway, store, cluster, hub, auth, instance, devSecret, metrics, log, webhooks, access });
  const listen = { hostname: config.HOST, maxFrame: config.MESH_MAX_FRAME, maxBuffered: config.MESH_MAX_BUFFERED };
  const server = await runtime.serve(app.fetch, { ...listen, port: config.PORT });
  // The scraper's own port: /metrics only, no key (it is meant for a private network).
  const metricsServer = config.MESH_METRICS_PORT === undefined ? null : await runtime.serve(metricsRoute(metrics.registry).fetch, { ...listen, port: config.MESH_METRICS_PORT });
  const publishThread = config.MESH_PUBLISH_PORT === undefined ? null : await startPublishThread(config, opened, runtime, instance, metrics, log);
  const expiries = setInterval(() => gateway.armDueExpiries(), gateway.expirySweepMs);
  await cluster.advertise(config.MESH_ADVERTISE_URL ?? (config.FLY_PRIVATE_IP ? `http://[${config.FLY_PRIVATE_IP}]:${server.port}` : `http://127.0.0.1:${server.port}`));
  let backlogs: ReturnType<typeof setInterval> | undefined;
  if (server.broadcast && config.MESH_NATIVE_FANOUT) {
    hub.useBroadcast(server.broadcast);
    backlogs = setInterval(() => hub.checkNativeBacklogs(), BACKLOG_CHECK_MS);
  }
  if (!config.MESH_API_KEY) log.warn('MESH_API_KEY is not set: the server API answers loopback callers only');
  const where = config.DATABASE_URL ? 'DATABASE_URL' : store.kind === 'postgres' ? `an embedded Postgres server in ${config.MESH_DATA_DIR}` : `PGlite in ${config.MESH_DATA_DIR}`;
  log.info('started', { store: where, runtime: runtime.name, port: server.port, metricsPort: metricsServer?.port, publishPort: publishThread?.port });

  const stop = async () => {
    sampler.stop();
    clearInterval(backlogs);
    clearInterval(expiries);
    for (const session of hub.sessions()) session.close(CloseCode.GOING_AWAY, 'server shutting down');
    await server.stop();
    await metricsServer?.stop();
    // Publishes are answered to the end: the thread goes after the clients.
    await publishThread?.stop();
    await webhooks.stop();
    await cluster.close();
    await store.close();
  };
  return {
    port: server.port,
    url: `http://${config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST}:${server.port}`,
    runtime: runtime.name,
    store,
    cluster,
    publishThread,
    hub,
    metrics,
    log,
    stop,
    async drain() {
      readiness.draining = true;
      const sessions = [...hub.sessions()];
      log.info('draining', { connections: sessions.length, overMs: config.MESH_DRAIN_TIME });
      // Paced by the clock, not by a count of steps: the closes of a step and a late timer (a busy
      // instance's are) stretched a 3 s drain to 7 s, and a deploy's kill timeout comes after the window.
      // Each step closes its share of the clients left over the time left: a step behind the clock (after
      // a stall) spreads what it missed over the rest of the window rather than closing it at once (one
      // stall of a busy instance sent a quarter of its clients back together), and the last step is due
      // at the window's end.
      const started = performance.now();
      let closed = 0;
      while (closed < sessions.length) {
        const left = config.MESH_DRAIN_TIME - (performance.now() - started);
        const share = left <= DRAIN_STEP_MS ? sessions.length - closed : Math.ceil(((sessions.length - closed) * DRAIN_STEP_MS) / left);
        const due = Math.min(sessions.length, closed + Math.max(1, share));
        for (const session of sessions.slice(closed, due)) session.close(CloseCode.SERVICE_RESTART, 'server restarting: reconnect');
        closed = due;
        if (closed < sessions.length) await new Promise((resolve) => setTimeout(resolve, DRAIN_STEP_MS)); // the pacing of the drain itself
      }
      await stop();
    },
  };
}

/** The publish thread of MESH_PUBLISH_PORT, on the store's database; should it not start, the instance does not either. */
async function startPublishThread(config: Config, opened: OpenStore, runtime: RuntimeAdapter, instance: string, metrics: Metrics, log: Log): Promise<PublishThread> {
  // loadConfig refuses the setting with PGlite: this is for an instance started with a hand-made Config.
  if (opened.endpoint === null) throw new Error('MESH_PUBLISH_PORT needs a Postgres server, not PGlite');
  const hub = config.MERCURE_PUBLISHER_JWT_KEY !== undefined || config.MERCURE_PUBLISHER_JWKS_URL !== undefined;
  if (hub && config.MERCURE_PUBLIC_URL === undefined) log.warn('the publish port takes no Mercure updates: set MERCURE_PUBLIC_URL (the hub URL browsers use) to publish them there');
  return await PublishThread.start(
    runtime,
    {
      endpoint: opened.endpoint,
      instance,
      region: config.MESH_REGION,
      hostname: config.HOST,
      port: config.MESH_PUBLISH_PORT!,
      apiKey: config.MESH_API_KEY,
      readKey: config.MESH_API_READ_KEY,
      maxMessage: config.MESH_MAX_MESSAGE,
      maxJsonDepth: config.MESH_MAX_JSON_DEPTH,
      groupCommit: config.MESH_GROUP_COMMIT,
      ttlMs: config.MESH_INSTANCE_TTL,
      pusherApps: [...config.PUSHER_APPS],
      mercure: mercurePublishSettings(config),
      log: { level: config.MESH_LOG, format: formatFor(config.MESH_LOG_FORMAT) },
    },
    metrics,
    log,
  );
}

// With no way to verify tokens configured, run in demo mode: an ephemeral secret
// that only the loopback-only /v1/dev/token endpoint signs with.
function devSecretIfNoAuth(config: Config, log: Log): string | undefined {
  if (config.JWT_SECRET || config.JWKS_URL || config.AUTH_URL) return undefined;
  log.warn('no JWT_SECRET, JWKS_URL or AUTH_URL: demo mode, tokens from GET /v1/dev/token (loopback only)');
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** One line when a connection authenticates and one when it closes, with its id and the client's address. */
function lifecycleLog(log: Log): SessionObserver {
  return {
    authenticated: (s) => log.info('connection authenticated', { conn: s.id, uid: s.uid, transport: s.transport, ip: s.address }),
    subscribed: () => {},
    unsubscribed: () => {},
    closed: (s) => log.info('connection closed', { conn: s.id, uid: s.uid, transport: s.transport, ip: s.address, seconds: Math.round((Date.now() - s.connectedAt) / 1000) }),
  };
}

/** Counts the connections cut off as slow consumers (for /metrics and the console). */
function slowConsumers(metrics: Metrics): SessionObserver {
  return {
    authenticated: () => {},
    subscribed: () => {},
    unsubscribed: () => {},
    closed: (s) => {
      if (s.closedWith === CloseCode.SLOW_CONSUMER) metrics.slowConsumer();
    },
  };
}

/** pgmesh's version, from its package.json. */
async function pgmeshVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** What each session said about itself in a channel (a Pusher member's user_info, a Mercure subscriber's), by channel. */
type SaidInChannels = WeakMap<Session, Map<string, string>>;

/**
 * Keeps the cluster's presence rows in step with the sessions of this instance, and remembers what
 * each said about itself (`said`), for writing it all again. An open console is left out: looking
 * at a channel must not change who is in it (nor occupy it, nor send webhooks).
 */
function presenceOf(cluster: Cluster, said: SaidInChannels): SessionObserver {
  const counted = (s: { uid: string | undefined }) => s.uid !== CONSOLE_UID;
  return {
    authenticated: (s) => {
      if (counted(s)) cluster.connected(s.id, s.uid!, s.transport, s.connectedAt, s.address);
    },
    subscribed: (s, channels, info) => {
      if (!counted(s)) return;
      cluster.subscribed(s.id, s.uid!, channels, info);
      // Most subscriptions say nothing: no map is made for them (a storm's are all of this kind).
      let own = said.get(s);
      if (info === undefined) {
        for (const channel of channels) own?.delete(channel);
        return;
      }
      if (own === undefined) said.set(s, (own = new Map()));
      for (const channel of channels) own.set(channel, info);
    },
    unsubscribed: (s, channels) => {
      if (!counted(s)) return;
      cluster.unsubscribed(s.id, s.uid!, channels);
      const own = said.get(s);
      for (const channel of channels) own?.delete(channel);
    },
    closed: (s) => {
      if (s.identity !== null && counted(s)) cluster.disconnected(s.id, disconnectReason(s));
    },
  };
}

function* localConnections(hub: Hub, said: SaidInChannels): Iterable<LocalConnection> {
  for (const s of hub.sessions()) {
    if (s.identity === null || s.closed || s.identity.uid === CONSOLE_UID) continue;
    // Every channel it holds, pgmesh's own included (a Pusher app's, a watch of joins and leaves): all were written.
    yield { id: s.id, uid: s.identity.uid, transport: s.transport, connectedAt: s.connectedAt, address: s.address, channels: [...s.channels()], said: said.get(s) };
  }
}

/** One observer that tells each of several, in order. */
function everyOf(observers: SessionObserver[]): SessionObserver | undefined {
  if (observers.length === 0) return undefined;
  if (observers.length === 1) return observers[0];
  return {
    authenticated: (s) => observers.forEach((o) => o.authenticated(s)),
    subscribed: (s, c, info) => observers.forEach((o) => o.subscribed(s, c, info)),
    unsubscribed: (s, c) => observers.forEach((o) => o.unsubscribed(s, c)),
    closed: (s) => observers.forEach((o) => o.closed(s)),
  };
}

/** A sender for pgmesh's webhooks (MESH_WEBHOOK_URL) and one for each Pusher app with a webhook URL. */
function webhookSenders(config: Config, opened: OpenStore, log: Log, metrics: Metrics): WebhookSenders {
  const posted = (target: string) => (seconds: number, ok: boolean) => metrics.webhookPosted(target, seconds, ok);
  const common = {
    timeoutMs: config.MESH_WEBHOOK_TIMEOUT,
    retry: { firstDelayMs: 1000, maxDelayMs: 5 * 60_000, expireMs: config.MESH_WEBHOOK_RETRY_FOR },
    maxBacklog: config.MESH_WEBHOOK_BACKLOG,
    log,
  };
  const senders = new Map<string, WebhookSender>();
  if (config.MESH_WEBHOOK_URL) {
    senders.set(MESH_TARGET, new WebhookSender({ ...common, queue: opened.webhooks(MESH_TARGET), url: config.MESH_WEBHOOK_URL, format: meshWebhookFormat(config.MESH_WEBHOOK_SECRET!), onPost: posted(MESH_TARGET) }));
  }
  for (const app of config.PUSHER_APPS) {
    const url = config.PUSHER_WEBHOOKS[app.id];
    const chosen = config.PUSHER_WEBHOOK_EVENTS[app.id];
    const wanted = chosen === undefined ? undefined : (event: Record<string, unknown>) => chosen.has(event.name as PusherWebhookEvent);
    if (url !== undefined) senders.set(pusherTarget(app.id), new WebhookSender({ ...common, queue: opened.webhooks(pusherTarget(app.id)), url, format: pusherWebhookFormat(app), wanted, onPost: posted(pusherTarget(app.id)) }));
  }
  return new WebhookSenders(senders);
}
