/**
 * Opens the store the settings ask for: the Postgres server of DATABASE_URL; else
 * the embedded one pgmesh runs itself in MESH_DATA_DIR; else (MESH_EMBEDDED=pglite,
 * or MESH_DATA_DIR=memory://) PGlite.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Store, StoreObserver } from './store.ts';
import type { PostgresOptions } from './postgres.ts';
import { SqlStore } from './sql-store.ts';
import { SqlPublisher, type PublisherOptions } from './publisher.ts';
import type { Cluster, ClusterOptions } from './cluster.ts';
import { SqlCluster } from './sql-cluster.ts';
import { PresenceReader } from './presence-reader.ts';
import type { SqlDriver } from './driver.ts';
import { takeLock } from './folder-lock.ts';
import { SqlWebhookQueue } from './sql-webhook-queue.ts';
import type { WebhookQueue, WebhookTargets } from './webhooks.ts';

/** Where another connection to the same Postgres server is opened (the publish thread's): a URL, and for the embedded server its socket. */
export interface PostgresEndpoint {
  url: string;
  socket?: string;
}

/** The embedded server in `dataDir`, behind the folder lock; closing the driver stops the server. */
async function openEmbeddedServer(dataDir: string, options: PostgresOptions): Promise<{ driver: SqlDriver; endpoint: PostgresEndpoint }> {
  // Before 0.2 the embedded store was PGlite, straight in the folder: say so rather than start empty beside it.
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(`MESH_DATA_DIR ${dataDir} holds PGlite data: set MESH_EMBEDDED=pglite to go on using it, or point MESH_DATA_DIR at a new folder`);
  }
  const release = takeLock(dataDir);
  try {
    const server = await (await import('./embedded-server.ts')).startEmbeddedServer(dataDir);
    try {
      const driver = await (await import('./postgres.ts')).openPostgres(server.url, { ...options, socket: server.socket });
      return {
        endpoint: { url: server.url, socket: server.socket },
        driver: {
          ...driver,
          close: async () => {
            try {
              await driver.close();
            } finally {
              await server.stop();
              release();
            }
          },
        },
      };
    } catch (err) {
      await server.stop();
      throw err;
    }
  } catch (err) {
    release();
    throw err;
  }
}

export interface StoreSettings {
  databaseUrl?: string;
  dataDir: string;
  /** Without DATABASE_URL: a Postgres server pgmesh runs itself, or PGlite in this process. */
  embedded: 'postgres' | 'pglite';
  retentionMs: number;
  /** application_name prefix on Postgres. */
  instanceId: string;
  heartbeatMs: number;
  groupCommit: boolean;
  /** MESH_MAX_MESSAGE, which mesh_publish() in SQL enforces too. */
  maxMessage: number;
  onError?: (err: unknown) => void;
  onHealthy?: () => void;
  observer?: StoreObserver;
  /** The webhook targets a message's hook (a Pusher client event) is written for, with their bounds. */
  hooks?: WebhookTargets;
}

/** The message store, and the cluster state kept in the same database. */
export interface OpenStore {
  store: Store;
  /** Cluster state over the same connections; start it after the store (it needs the schema). */
  cluster(options: ClusterOptions): Cluster;
  /** A target's webhook queue over the same connections (after the store has started). */
  webhooks(target: string): WebhookQueue;
  /** Where a second connection to this database is opened; null for PGlite, which one process holds alone. */
  endpoint: PostgresEndpoint | null;
}

/** Connects (or opens the data folder); call start() on the store, then on the cluster. */
export async function openStore(settings: StoreSettings): Promise<OpenStore> {
  const postgresOptions = { applicationName: `pgmesh-${settings.instanceId}`, heartbeatMs: settings.heartbeatMs };
  let driver: SqlDriver;
  let endpoint: PostgresEndpoint | null = null;
  if (settings.databaseUrl) {
    driver = await (await import('./postgres.ts')).openPostgres(settings.databaseUrl, postgresOptions);
    endpoint = { url: settings.databaseUrl };
  } else if (settings.embedded === 'pglite' || settings.dataDir.startsWith('memory://')) {
    driver = await (await import('./pglite.ts')).openPglite(settings.dataDir);
  } else {
    ({ driver, endpoint } = await openEmbeddedServer(settings.dataDir, postgresOptions));
  }
  return {
    store: new SqlStore(driver, { retentionMs: settings.retentionMs, groupCommit: settings.groupCommit, maxMessage: settings.maxMessage, onError: settings.onError, onHealthy: settings.onHealthy, observer: settings.observer, hooks: settings.hooks }),
    cluster: (options) => new SqlCluster(driver, options),
    webhooks: (target) => new SqlWebhookQueue(driver, target),
    endpoint,
  };
}

/** What the publish thread has of the database: its publisher, and the presence reads the Pusher HTTP API answers from. */
export interface PublishConnection {
  publisher: SqlPublisher;
  /** Presence as every instance reads it (reads only: the thread writes none). */
  presence: Pick<Cluster, 'channels' | 'members'>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A publisher on a connection of its own to `endpoint` (the store has migrated the database); closing it closes that connection. */
export async function openPublisher(endpoint: PostgresEndpoint, settings: { instanceId: string; ttlMs: number; groupCommit: boolean; observer?: PublisherOptions['observer'] }): Promise<PublishConnection> {
  // One connection for the publishes' ordered lane, one for reads (presence; was a lost answer's publish committed?).
  const driver = await (await import('./postgres.ts')).openPostgres(endpoint.url, { max: 1, applicationName: `pgmesh-${settings.instanceId}-publish`, socket: endpoint.socket });
  // Both open now: the first publish must not pay for a connection (a far primary's is several round trips), and an unreachable database stops the start.
  try {
    await Promise.all([driver.query('select 1'), driver.queryInOrder('select 1')]);
  } catch (err) {
    await driver.close();
    throw err;
  }
  return {
    publisher: new SqlPublisher(driver, { groupCommit: settings.groupCommit, observer: settings.observer }),
    presence: new PresenceReader(driver, settings.ttlMs),
    ping: async () => void (await driver.query('select 1')),
    close: () => driver.close(),
  };
}
