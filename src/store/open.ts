/** Opens the store the settings ask for: a Postgres server with DATABASE_URL, else embedded PGlite. */
import type { Store } from './store.ts';
import { SqlStore } from './sql-store.ts';

export interface StoreSettings {
  databaseUrl?: string;
  dataDir: string;
  retentionMs: number;
  /** application_name prefix on Postgres. */
  instanceId: string;
  heartbeatMs: number;
  groupCommit: boolean;
  onError?: (err: unknown) => void;
}

/** Connects (or opens the data folder); call start() on the result. */
export async function openStore(settings: StoreSettings): Promise<Store> {
  const driver = settings.databaseUrl
    ? await (await import('./postgres.ts')).openPostgres(settings.databaseUrl, {
        applicationName: `pgmesh-${settings.instanceId}`,
        heartbeatMs: settings.heartbeatMs,
      })
    : await (await import('./pglite.ts')).openPglite(settings.dataDir);
  return new SqlStore(driver, { retentionMs: settings.retentionMs, groupCommit: settings.groupCommit, onError: settings.onError });
}
