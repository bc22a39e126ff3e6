/**
 * Every setting pgmesh reads, as one zod schema over the environment, with
 * defaults. A bad value stops the start with one line naming the setting.
 */
import { z } from 'zod';
import { isAddressRange } from './api/client-address.ts';
import { parsePusherApps, parsePusherClientEvents } from './pusher/apps.ts';
import { parsePusherWebhookEvents, parsePusherWebhooks } from './pusher/webhooks.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZES: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20 };

/** "24h", "90m", "7d", "500ms" -> milliseconds. */
const duration = z.string().transform((text, ctx) => {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i.exec(text.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration like 30s, 15m, 24h or 7d` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * UNITS[match[2]!.toLowerCase()]!);
});

/** "65536", "64k", "1MiB" -> bytes. */
const size = z.string().transform((text, ctx) => {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? SIZES[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a size like 65536, 64k or 1m` });
    return z.NEVER;
  }
  return Number(match[1]) * unit;
});

const url = z.url({ error: 'must be a URL' });
const paths = z.string().transform((text, ctx) => {
  const list = text.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  const bad = list.find((p) => !/^\/[\w\-./]*$/.test(p));
  if (bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: `"${bad}" is not a path like /chat` });
    return z.NEVER;
  }
  return list;
});
const origins = z.string().transform((text, ctx) => {
  const list = text.split(',').map((o) => o.trim()).filter((o) => o.length > 0);
  const bad = list.find((o) => !/^https?:\/\/[^/\s]+$/i.test(o));
  if (bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: `"${bad}" is not an origin like https://app.example.com` });
    return z.NEVER;
  }
  return list;
});
const proxies = z.string().transform((text, ctx) => {
  const list = text.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  const bad = list.find((p) => !isAddressRange(p));
  if (bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: `"${bad}" is not an IP address or range like 10.0.0.0/8 or fd00::/8` });
    return z.NEVER;
  }
  return list;
});
/** A setting read by a parser that throws, its message being the reason. */
const parsedBy = <T>(parse: (text: string) => T) =>
  z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
const pusherApps = parsedBy(parsePusherApps);
const pusherWebhooks = parsedBy(parsePusherWebhooks);
const pusherWebhookEvents = parsedBy(parsePusherWebhookEvents);
const pusherClientEvents = parsedBy(parsePusherClientEvents);
const flag = z.enum(['0', '1', 'true', 'false', 'yes', 'no']).transform((v) => ['1', 'true', 'yes'].includes(v));
const jwtAlgorithm = z.enum(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'], { error: 'a JWS algorithm such as HS256, RS256 or ES256' });
const list = z.string().transform((text) => text.split(',').map((item) => item.trim()).filter((item) => item.length > 0));
const mercureVersions = z.string().transform((text, ctx) => {
  const versions = text.split(',').map((v) => v.trim().replace(/\.x$/, '').replace(/^1\.0$/, '1'));
  const bad = versions.find((v) => v !== '1' && v !== '0');
  if (bad !== undefined || versions.length === 0) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a list of Mercure versions like 1,0.x` });
    return z.NEVER;
  }
  return new Set(versions as ('1' | '0')[]);
});

export const ConfigSchema = z.object({
  PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: url.optional(),
  MESH_DATA_DIR: z.string().min(1).default('./.pgmesh'),
  /** Without DATABASE_URL: a Postgres server pgmesh runs itself in MESH_DATA_DIR (postgres), or PGlite in its own process (pglite). */
  MESH_EMBEDDED: z.enum(['postgres', 'pglite'], { error: 'postgres or pglite' }).default('postgres'),
  JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  JWKS_URL: url.optional(),
  JWT_ISSUER: z.string().optional(),
  JWT_AUDIENCE: z.string().optional(),
  AUTH_URL: url.optional(),
  /** Refuse JWTs that carry no `exp`. */
  JWT_REQUIRE_EXP: flag.default(true),
  /** A connection that has not authenticated within this time is closed with 4002. */
  MESH_AUTH_TIMEOUT: duration.default(10_000),
  /** Web origins (exact, comma-separated) whose pages may use the SSE transport across origins, cookies included. */
  MESH_CORS_ORIGINS: origins.default([]),
  MESH_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** A second key that reads the server API and the console and changes nothing (GET only). */
  MESH_API_READ_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Serve the operator's console at /console (behind the API keys, or to loopback callers without one). */
  MESH_CONSOLE: flag.default(true),
  /** How often each instance writes its report and a sample of its counters (the console's charts, GET /v1/mesh/instances). */
  MESH_STATS_INTERVAL: duration.pipe(z.number().min(250, 'at least 250ms').max(60_000, 'at most 60s')).default(1_000),
  MESH_WS_PATHS: paths.default([]),
  MESH_RETENTION: duration.default(24 * 3_600_000),
  MESH_MAX_FRAME: size.default(64 * 1024),
  MESH_MAX_MESSAGE: size.default(1 << 20),
  /** Deepest nesting of arrays and objects in any JSON pgmesh reads (frames, bodies, backend answers). */
  MESH_MAX_JSON_DEPTH: z.coerce.number({ error: 'must be a number' }).int().min(2).max(1000).default(32),
  /** Channels one connection may be subscribed to at once (pgmesh and Pusher sockets alike). */
  MESH_MAX_SUBSCRIPTIONS: z.coerce.number({ error: 'must be a number' }).int().min(1).default(256),
  /** Frames one connection may send a second (twice that in a burst; a refused frame counts 5); past it, closed with 4029. 0 is no limit. */
  MESH_MAX_FRAMES_PER_SECOND: z.coerce.number({ error: 'must be a number' }).int().min(0).default(100),
  /** Connections one user may hold on one instance; 0 is no limit. */
  MESH_MAX_CONNECTIONS_PER_USER: z.coerce.number({ error: 'must be a number' }).int().min(0).default(0),
  /** Realtime connections this instance takes before it says it is full (503 ERR_FULL, /readyz not ready); 0: derived from the open-file limit. */
  MESH_MAX_CONNECTIONS: z.coerce.number({ error: 'must be a number' }).int().min(0).default(0),
  /** Realtime connections one client address may hold on one instance; 0 is no limit. */
  MESH_MAX_CONNECTIONS_PER_ADDRESS: z.coerce.number({ error: 'must be a number' }).int().min(0).default(0),
  /** Bytes a client may leave unread before it is cut off as a slow consumer. */
  MESH_MAX_BUFFERED: size.default(8 << 20),
  /** Cookie that may carry the token for EventSource (which cannot send headers). */
  MESH_SSE_COOKIE: z.string().regex(/^[\w-]{1,64}$/, 'a cookie name').default('pgmesh_token'),
  /** Comment heartbeat on SSE streams: well under proxies' idle timeouts (Fly: 60 s). */
  MESH_SSE_HEARTBEAT: duration.default(15_000),
  /** The `retry:` hint sent to EventSource clients. */
  MESH_SSE_RETRY: duration.default(2_000),
  /** Group concurrent publishes into one statement; off only to measure what it buys. */
  MESH_GROUP_COMMIT: flag.default(true),
  /** Fan out through the runtime's native topics where it has them (Bun); off only to measure what it buys. */
  MESH_NATIVE_FANOUT: flag.default(true),
  /** Refuse WebSocket upgrades (tests of the SSE fallback). */
  MESH_DISABLE_WS: flag.default(false),
  /** Names this instance in connection ids, pg_stat_activity (application_name) and every log line; default FLY_MACHINE_ID or host-pid. */
  MESH_INSTANCE_ID: z.string().regex(/^[\w.-]{1,40}$/, 'letters, digits, _ . - (at most 40)').optional(),
  /** An instance silent this long is dead: its connections leave presence (and leave events go out) within it. */
  MESH_INSTANCE_TTL: duration.default(15_000),
  /** The region this instance runs in (Fly sets FLY_REGION), shown beside its connections. */
  MESH_REGION: z.string().regex(/^[\w.-]{1,40}$/, 'letters, digits, _ . - (at most 40)').optional(),
  /** How often the LISTEN connection is checked. */
  MESH_HEARTBEAT: duration.default(10_000),
  /**
   * How the other instances reach this one (an SSE uplink POST that lands elsewhere is relayed
   * here). Default: http://[FLY_PRIVATE_IP]:PORT on Fly, else http://127.0.0.1:PORT (one host).
   */
  MESH_ADVERTISE_URL: url.optional(),
  /** On SIGTERM/SIGINT the instance closes its clients spread over this long (1012, reconnect elsewhere), then exits: keep Fly's kill_timeout above it. */
  MESH_DRAIN_TIME: duration.default(10_000),
  /** Where client `rpc` ops are POSTed (signed with MESH_WEBHOOK_SECRET); the answer goes back to the client. */
  MESH_RPC_URL: url.optional(),
  /** How long a client's `rpc` waits for the backend before ERR_RPC_TIMEOUT. */
  MESH_RPC_TIMEOUT: duration.default(5_000),
  /** Where webhook events (connect, disconnect, user_online, channel_vacated, …) are POSTed, signed, in batches. */
  MESH_WEBHOOK_URL: url.optional(),
  /** How long a webhook POST may take before it counts as failed (and is retried). */
  MESH_WEBHOOK_TIMEOUT: duration.default(10_000),
  /** How long an undelivered webhook event is retried (with growing waits, up to 5 minutes apart) before it is given up. */
  MESH_WEBHOOK_RETRY_FOR: duration.default(24 * 3_600_000),
  /** Events waiting past which new ones are dropped and counted, not written (a backend gone for days must not fill the disk). */
  MESH_WEBHOOK_BACKLOG: z.coerce.number({ error: 'must be a number' }).int().min(1).default(100_000),
  /** Signs every request pgmesh sends the backend (Pgmesh-Signature: t=…,v1=HMAC-SHA256). */
  MESH_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Pusher apps this server answers for, `id:key:secret` comma-separated: sockets at /app/{key}, the HTTP API at /apps/{id}. */
  PUSHER_APPS: pusherApps.default([]),
  /** Where each Pusher app's webhooks go, `<app id>=<url>` comma-separated: Pusher's format, signed with that app's secret, durable like MESH_WEBHOOK_URL's. */
  PUSHER_WEBHOOKS: pusherWebhooks.default({}),
  /** Which events each app's webhook gets, `<app id>=<event>+<event>` comma-separated; an app not named gets them all. */
  PUSHER_WEBHOOK_EVENTS: pusherWebhookEvents.default({}),
  /** Whether each app's sockets may send client events, `<app id>=on|off` comma-separated; on for an app not named. */
  PUSHER_CLIENT_EVENTS: pusherClientEvents.default({}),
  /** The Mercure hub at /.well-known/mercure is on when this (or MERCURE_PUBLISHER_JWKS_URL) is set: the publishers' token key, a secret for HS*, a PEM public key otherwise. */
  MERCURE_PUBLISHER_JWT_KEY: z.string().min(1).optional(),
  MERCURE_PUBLISHER_JWT_ALG: jwtAlgorithm.default('HS256'),
  /** Publishers' keys from a JWKS instead (RS/ES/PS/EdDSA). */
  MERCURE_PUBLISHER_JWKS_URL: url.optional(),
  /** The subscribers' token key; default: the publishers'. */
  MERCURE_SUBSCRIBER_JWT_KEY: z.string().min(1).optional(),
  /** Default: MERCURE_PUBLISHER_JWT_ALG. */
  MERCURE_SUBSCRIBER_JWT_ALG: jwtAlgorithm.optional(),
  MERCURE_SUBSCRIBER_JWKS_URL: url.optional(),
  /** Issuers (`iss`) whose Mercure 1.0 access tokens are trusted, comma-separated; without any, 1.0 tokens are refused. */
  MERCURE_ISSUERS: list.default([]),
  /** The hub's URL as clients reach it (base of relative topics; the default audience); default: this request's origin + /.well-known/mercure. */
  MERCURE_PUBLIC_URL: url.optional(),
  /** The resource identifier a 1.0 token's `aud` must name; default: the hub's URL. */
  MERCURE_AUDIENCE: z.string().min(1).optional(),
  /** Subscribers without a token get the public updates. */
  MERCURE_ANONYMOUS: flag.default(false),
  /** Web origins (exact, comma-separated) whose pages may subscribe with cookies and publish. */
  MERCURE_CORS_ORIGINS: origins.default([]),
  /** The protocol generations spoken: 1 (match=, at+jwt tokens), 0.x (topic=, mercure claims), or both. */
  MERCURE_VERSIONS: mercureVersions.default(new Set(['1', '0'] as const)),
  MESH_LOG: z.enum(['debug', 'info', 'warn', 'silent']).default('info'),
  /** JSON lines (for log shippers), pretty (for people), or auto: pretty when stderr is a terminal. */
  MESH_LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Proxies in front of pgmesh (addresses or CIDR ranges) whose X-Forwarded-For names the client. Not needed on Fly (Fly-Client-IP). */
  MESH_TRUSTED_PROXIES: proxies.default([]),
  /** Also serve GET /metrics, with no key, on this port alone (for a scraper on a private network: Fly's [metrics]). */
  MESH_METRICS_PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535).optional(),
  /**
   * Also serve POST /v1/mesh/publish (and /healthz) on this port, from a thread of its own with its own
   * database connection: publishes are then never held up by the main loop's connection storms.
   */
  MESH_PUBLISH_PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535).optional(),
  /** Set by Fly: this machine's id (the default MESH_INSTANCE_ID); an SSE uplink POST for another machine's stream is answered with fly-replay. */
  FLY_MACHINE_ID: z.string().regex(/^[\w-]{1,40}$/, 'a machine id').optional(),
  /** Set by Fly: this machine's private IPv6 address (the default MESH_ADVERTISE_URL). */
  FLY_PRIVATE_IP: z.string().optional(),
});

export type Config = z.infer<typeof ConfigSchema>;

/** Thrown for a bad setting; its message is the one line to print. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads and validates the settings from an environment (unset and empty are the same). */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const present = Object.fromEntries(
    Object.keys(ConfigSchema.shape)
      .map((key) => [key, env[key]?.trim()] as const)
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  if (present.MESH_INSTANCE_ID === undefined && env.FLY_MACHINE_ID) present.MESH_INSTANCE_ID = env.FLY_MACHINE_ID;
  if (present.MESH_REGION === undefined && env.FLY_REGION) present.MESH_REGION = env.FLY_REGION;
  const parsed = ConfigSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid setting ${String(issue.path[0])}: ${issue.message}`);
  }
  // A backend must be able to tell pgmesh's requests from anyone's.
  if (parsed.data.MESH_RPC_URL && !parsed.data.MESH_WEBHOOK_SECRET) throw new ConfigError('invalid setting MESH_WEBHOOK_SECRET: required to sign the calls to MESH_RPC_URL');
  if (parsed.data.MESH_WEBHOOK_URL && !parsed.data.MESH_WEBHOOK_SECRET) throw new ConfigError('invalid setting MESH_WEBHOOK_SECRET: required to sign the webhooks to MESH_WEBHOOK_URL');
  if (parsed.data.MESH_API_READ_KEY !== undefined && parsed.data.MESH_API_READ_KEY === parsed.data.MESH_API_KEY) {
    throw new ConfigError('invalid setting MESH_API_READ_KEY: must differ from MESH_API_KEY (a read-only key that is also the full key reads and writes)');
  }
  const pglite = parsed.data.DATABASE_URL === undefined && (parsed.data.MESH_EMBEDDED === 'pglite' || parsed.data.MESH_DATA_DIR.startsWith('memory://'));
  if (parsed.data.MESH_PUBLISH_PORT !== undefined && pglite) {
    throw new ConfigError('invalid setting MESH_PUBLISH_PORT: needs a Postgres server (DATABASE_URL, or the embedded one), not PGlite, which one thread holds alone');
  }
  const unknownApp = Object.keys(parsed.data.PUSHER_WEBHOOKS).find((id) => !parsed.data.PUSHER_APPS.some((app) => app.id === id));
  if (unknownApp !== undefined) throw new ConfigError(`invalid setting PUSHER_WEBHOOKS: app ${unknownApp} is not in PUSHER_APPS`);
  for (const setting of ['PUSHER_WEBHOOK_EVENTS', 'PUSHER_CLIENT_EVENTS'] as const) {
    const unknown = Object.keys(parsed.data[setting]).find((id) => !parsed.data.PUSHER_APPS.some((app) => app.id === id));
    if (unknown !== undefined) throw new ConfigError(`invalid setting ${setting}: app ${unknown} is not in PUSHER_APPS`);
  }
  return parsed.data;
}
