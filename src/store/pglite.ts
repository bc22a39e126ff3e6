/**
 * The embedded store: PGlite (Postgres compiled to WASM) in a data folder, for
 * a single instance with no DATABASE_URL. PGlite is one connection in one
 * process and has no lock of its own; two processes on one folder corrupt it,
 * so we hold a lock file and refuse to start when another live process has it.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Row, SqlDriver, SqlQuery } from './driver.ts';

const LOCK_FILE = 'pgmesh.lock';

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
  return {
    kind: 'pglite',
    ...asQuery(db),
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

/**
 * Takes the folder's lock file by exclusive create, so two processes starting together
 * cannot both get it. A lock left by a dead process is removed and taken once more.
 */
export function takeLock(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(path);
    if (attempt > 0 || holder === undefined || isAlive(holder)) {
      throw new Error(
        `MESH_DATA_DIR ${dataDir} is in use by process ${holder ?? '(unknown)'}; the embedded store allows one process per folder (use DATABASE_URL for several instances)`,
      );
    }
    // Stale: its process is gone. Remove it only if it still names that process (another starter may have replaced it).
    if (readHolder(path) === holder) rmSync(path, { force: true });
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}
