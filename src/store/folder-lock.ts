/**
 * One pgmesh process per data folder: a lock file taken by exclusive create.
 * PGlite has no lock of its own, and a second embedded server on the same
 * folder would only fail later and less clearly.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const LOCK_FILE = 'pgmesh.lock';

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
