/** Several pgmesh processes on one Postgres database: a cluster on one machine. */
import { afterAll } from 'bun:test';
import { freshDatabase } from './postgres.ts';
import { startProcess, type MeshProcess, type RuntimeName } from './process.ts';
import { token } from './tokens.ts';
import { connect, type WsClient } from './ws-client.ts';

export interface Instance extends MeshProcess {
  id: string;
  /** Connects and authenticates as `uid`. */
  login(uid: string, query?: string): Promise<WsClient>;
  publish(body: unknown): Promise<Response>;
}

/**
 * Starts one instance per runtime given, named A, B, C…, on a fresh database (or `databaseUrl`).
 * Called at a file's top level, they stop after its last test; called inside a test (where bun
 * runs no afterAll registered then), the test stops them with `stop()`, in a finally.
 */
export async function startCluster(
  runtimes: RuntimeName[],
  options: { databaseUrl?: string; env?: Record<string, string>; /** More settings for the i-th instance alone (its region, say). */ envOf?: (i: number) => Record<string, string> } = {},
): Promise<{ databaseUrl: string; instances: Instance[]; stop: () => Promise<void> }> {
  const databaseUrl = options.databaseUrl ?? (await freshDatabase());
  const clients: WsClient[] = [];
  const instances = await Promise.all(
    runtimes.map(async (runtime, i) => {
      const id = String.fromCharCode(65 + i);
      const proc = await startProcess(runtime, { DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: id, MESH_HEARTBEAT: '2s', ...options.env, ...options.envOf?.(i) });
      const instance: Instance = {
        ...proc,
        id,
        async login(uid, query = '') {
          const client = await connect(`${proc.url.replace('http', 'ws')}/v1/ws${query ? `?${query}` : ''}`);
          clients.push(client);
          const reply = await client.request({ op: 'auth', token: await token(uid) });
          if (reply.success !== true) throw new Error(`login on ${id} failed: ${JSON.stringify(reply)}`);
          return client;
        },
        publish: (body) => fetch(`${proc.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      };
      return instance;
    }),
  );
  const stop = async () => {
    for (const c of clients) c.close();
    await Promise.all(instances.map((i) => i.stop()));
  };
  afterAll(stop);
  return { databaseUrl, instances, stop };
}

/** Waits until `count` frames matching `match` arrived on `client`; returns their texts in arrival order. */
export async function collect(client: WsClient, count: number, match: (frame: unknown) => boolean, timeoutMs = 30_000): Promise<string[]> {
  const got: string[] = [];
  let scanned = 0;
  await client.until(() => {
    for (; scanned < client.frames.length; scanned++) if (match(client.frames[scanned])) got.push(client.texts[scanned]!);
    return got.length >= count;
  }, timeoutMs).catch((err) => {
    throw new Error(`${got.length} of ${count} frames: ${(err as Error).message}`);
  });
  return got;
}
