/** The Mercure hub from the settings: on when publishers have a key (MERCURE_PUBLISHER_JWT_KEY or a JWKS). */
import type { Hono } from 'hono';
import type { Gateway } from '../core/gateway.ts';
import type { Config } from '../config.ts';
import type { Store } from '../store/store.ts';
import type { Cluster } from '../store/cluster.ts';
import { SubscriberInfo } from './subscriptions.ts';
import { MERCURE_CHANNEL } from './update.ts';
import type { ClientAddress } from '../api/client-address.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import type { Log } from '../log.ts';
import { MercureGrants } from './grants.ts';
import { mercureRoutes } from './hub-routes.ts';
import { keySource, updateBodyLimit } from './publishing.ts';
import { HUB_PATH } from './request.ts';

/** The path of the hub, as the protocol fixes it. */
export const MERCURE_PATH = HUB_PATH;

/** The hub's routes, or null when no publisher key is set. */
export function mercureHub(config: Config, gateway: Gateway, store: Store, cluster: Cluster, runtime: RuntimeAdapter, log: Log, clientAddress: ClientAddress): Hono | null {
  const publisher = keySource(config.MERCURE_PUBLISHER_JWT_KEY, config.MERCURE_PUBLISHER_JWT_ALG, config.MERCURE_PUBLISHER_JWKS_URL, config.MESH_MAX_JSON_DEPTH);
  if (publisher === null) return null;
  const subscriber =
    keySource(config.MERCURE_SUBSCRIBER_JWT_KEY, config.MERCURE_SUBSCRIBER_JWT_ALG ?? config.MERCURE_PUBLISHER_JWT_ALG, config.MERCURE_SUBSCRIBER_JWKS_URL, config.MESH_MAX_JSON_DEPTH) ?? publisher;
  const grants = new MercureGrants({
    publisher,
    subscriber,
    versions: config.MERCURE_VERSIONS,
    issuers: config.MERCURE_ISSUERS,
    onRefused: (why) => log.info('mercure token refused', { why }),
  });
  return mercureRoutes(gateway, store, runtime, {
    grants,
    anonymous: config.MERCURE_ANONYMOUS,
    corsOrigins: config.MERCURE_CORS_ORIGINS,
    versions: config.MERCURE_VERSIONS,
    publicUrl: config.MERCURE_PUBLIC_URL,
    audience: config.MERCURE_AUDIENCE,
    heartbeatMs: config.MESH_SSE_HEARTBEAT,
    retryMs: config.MESH_SSE_RETRY,
    maxBody: updateBodyLimit(config.MESH_MAX_MESSAGE),
    findEventId: (id) => store.findMercureEvent(id),
    subscribers: async () =>
      (await cluster.connectionsIn(MERCURE_CHANNEL)).flatMap(({ info }) => {
        const parsed = SubscriberInfo.safeParse(info === null ? null : JSON.parse(info));
        return parsed.success ? [parsed.data] : [];
      }),
    clientAddress,
    onError: (err) => log.warn('mercure: the end of a subscription was not announced', { err }),
  });
}
