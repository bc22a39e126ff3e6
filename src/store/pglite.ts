/**
 * PGlite (Postgres compiled to WASM) in a data folder, or in memory: the store
 * of MESH_DATA_DIR=memory:// and of MESH_EMBEDDED=pglite. PGlite is one
 * connection in one process and has no lock of its own; two processes on one
 * folder corrupt it, so we hold the folder's lock file.
 */
import { PGlite } from '@electric-sql/pglite';
import type { Row, SqlDriver, SqlQuery } from './driver.ts';
import { takeLock } from './folder-lock.ts';

/** Opens PGlite in `dataDir` (or in memory for `memory://`). */
export async function openPglite(dataDir: string): Promise<SqlDriver> {
  const inMemory = dataDir.startsWith('memory://');
  const release = inMemory ? () => {} : takeLock(dataDir);
  let db: PGlite;
  try {
    db = await PGlite.create(inMemory ? undefined : dataDir);
  } catch (err) {
    release();
    throw err;
  }
  const asQuery = (q: Pick<PGlite, 'query' | 'exec'>): SqlQuery => ({
    query: async (text, params) => (await q.query<Row>(text, params as unknown[] | undefined)).rows,
    exec: async (text) => void (await q.exec(text)),
  });
  const direct = asQuery(db);
  return {
    kind: 'pglite',
    ...direct,
    // PGlite runs its queries one at a time, in the order they were made.
    queryInOrder: direct.query,
    transaction: (fn) => db.transaction((tx) => fn(asQuery(tx))),
    // In-process: the listener cannot be cut off from the database, so onLost never fires.
    listen: async (channel, events) => {
      await db.listen(channel, (payload) => events.onPayload(payload));
      events.onListen();
    },
    close: async () => {
      try {
        await db.close();
      } finally {
        release();
      }
    },
  };
}
