/**
 * How many realtime connections (WebSockets and event streams of every dialect)
 * this instance takes before it says it is full: MESH_MAX_CONNECTIONS when set,
 * else what the open-file limit leaves after a reserve for the instance's own
 * work (the HTTP API, health checks, Postgres, webhooks). Full is a state: new
 * connections get 503 ERR_FULL with Retry-After, /readyz says so, everything
 * else goes on.
 */
import type { OpenFileLimit } from '../runtime/open-files.ts';

export interface Capacity {
  /** The most realtime connections taken; null: no limit known. */
  limit: number | null;
  /** Where the limit comes from. */
  source: 'MESH_MAX_CONNECTIONS' | 'open-file limit' | 'none';
}

/** Files kept for the instance's own work: 5% of the limit, at least 64, at most half of it. */
export function reserveOf(openFiles: number): number {
  return Math.min(Math.floor(openFiles / 2), Math.max(64, Math.ceil(openFiles * 0.05)));
}

/** The capacity from the setting (0: derive it) and the open-file limit (null: unknown). */
export function capacityOf(setting: number, openFiles: OpenFileLimit | null): Capacity {
  if (setting > 0) return { limit: setting, source: 'MESH_MAX_CONNECTIONS' };
  if (openFiles === null) return { limit: null, source: 'none' };
  return { limit: openFiles.soft - reserveOf(openFiles.soft), source: 'open-file limit' };
}
