/** Opens the store the settings ask for: a Postgres server with DATABASE_URL, else embedded PGlite. */
import type { Store } from './store.ts';
import { SqlStore } from './sql-store.ts';
import { SqlCluster, type Cluster, type ClusterOptions } from './cluster.ts';

export interface StoreSettings {
  databaseUrl?: string;
  dataDir: string;
  retentionMs: number;
  /** application_name prefix on Postgres. */
  instanceId: string;
  heartbeatMs: number;
  groupCommit: boolean;
  /** MESH_MAX_MESSAGE, which mesh_publish() in SQL enforces too. */
  maxMessage: number;
  onError?: (err: unknown) => void;
  onHealthy?: () => void;
}

/** The message store, and the cluster state kept in the same database. */
export interface OpenStore {
  store: Store;
  /** Cluster state over the same connections; start it after the store (it needs the schema). */
  cluster(options: ClusterOptions): Cluster;
}

/** Connects (or opens the data folder); call start() on the store, then on the cluster. */
export async function openStore(settings: StoreSettings): Promise<OpenStore> {
  const driver = settings.databaseUrl
    ? await (await import('./postgres.ts')).openPostgres(settings.databaseUrl, {
        applicationName: `pgmesh-${settings.instanceId}`,
        heartbeatMs: settings.heartbeatMs,
      })
    : await (await import('./pglite.ts')).openPglite(settings.dataDir);
  return {
    store: new SqlStore(driver, { retentionMs: settings.retentionMs, groupCommit: settings.groupCommit, maxMessage: settings.maxMessage, onError: settings.onError, onHealthy: settings.onHealthy }),
    cluster: (options) => new SqlCluster(driver, options),
  };
}
