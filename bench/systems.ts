/**
 * The systems under test, each started as its own process on the same machine and
 * the same Postgres: pgmesh on bun, node and deno; the Socket.IO peer; the bare
 * Bun ceiling. Each knows how its clients connect and where publishes go.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { ROOT, startProcess, type RuntimeName } from '../test/harness/process.ts';
import { startLatencyProxy } from '../test/harness/tcp-proxy.ts';
import { TEST_SECRET } from '../test/harness/tokens.ts';
import type { SubscriberConfig } from './clients/subscribers.ts';

export type SystemName =
  | 'pgmesh-bun'
  | 'pgmesh-bun-js-fanout'
  | 'pgmesh-node'
  | 'pgmesh-deno'
  /** What `npm start` gives: no DATABASE_URL, the embedded Postgres server pgmesh runs itself. */
  | 'pgmesh-bun-embedded'
  | 'pgmesh-node-embedded'
  | 'pgmesh-deno-embedded'
  /** The embedded store before it: PGlite in the process. */
  | 'pgmesh-bun-pglite'
  /** pgmesh on Bun whose database is 60 ms away each way (a machine outside the primary region). */
  | 'pgmesh-bun-far'
  | 'socketio'
  | 'bun-ceiling'
  /** A bare node:http + ws broadcast: Node's own ceiling. */
  | 'ws-ceiling'
  /** The floor of a durable Postgres backplane on each runtime: insert + notify per POST, LISTEN, send (peers/floor-pipeline.ts). */
  | 'floor-bun'
  | 'floor-node'
  | 'floor-deno';

export interface RunningSystem {
  name: SystemName;
  /** The database it runs on, when the bench can reach it (not an embedded one). */
  databaseUrl: string | null;
  pid: number;
  httpUrl: string;
  /** Where a publish body ({"c","d"} or an array) is POSTed. */
  publishUrl: string;
  /** The same endpoint on the instance's publish thread, when it was started with MESH_PUBLISH_PORT. */
  threadPublishUrl?: string;
  protocol: SubscriberConfig['protocol'];
  /** The WebSocket URL a subscriber of `channel` connects to. */
  wsUrl(channel: string): Promise<string>;
  stop(): Promise<void>;
}

const BIN = join(ROOT, 'node_modules', '.bin');

let benchToken: Promise<string> | undefined;
/** One long-lived token for every bench subscriber. */
export function token(): Promise<string> {
  benchToken ??= new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bench').setExpirationTime('1d').sign(new TextEncoder().encode(TEST_SECRET));
  return benchToken;
}

/** Starts pgmesh on a runtime against `databaseUrl`, or (null) on its embedded store in a fresh folder. */
export async function startPgmesh(runtime: RuntimeName, databaseUrl: string | null, env: Record<string, string> = {}, name: SystemName = `pgmesh-${runtime}`): Promise<RunningSystem> {
  const dataDir = databaseUrl === null ? mkdtempSync(join(tmpdir(), 'pgmesh-bench-')) : null;
  const store: Record<string, string> = databaseUrl === null ? { MESH_DATA_DIR: dataDir! } : { DATABASE_URL: databaseUrl };
  const proc = await startProcess(runtime, { ...store, MESH_LOG: 'warn', MESH_MAX_BUFFERED: '64m', ...env });
  const ws = proc.url.replace('http', 'ws');
  return {
    name,
    databaseUrl,
    pid: proc.child.pid!,
    httpUrl: proc.url,
    publishUrl: `${proc.url}/v1/mesh/publish`,
    ...(proc.publishOrigin && { threadPublishUrl: `${proc.publishOrigin}/v1/mesh/publish` }),
    protocol: 'pgmesh',
    wsUrl: async () => `${ws}/v1/ws?token=${await token()}`,
    stop: async () => {
      await proc.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Starts a peer process that prints "listening on http://…"; its publish endpoint is POST /publish. */
function startPeer(
  name: SystemName,
  cmd: string[],
  env: Record<string, string>,
  protocol: RunningSystem['protocol'],
  wsPath: (channel: string) => string,
): Promise<RunningSystem> {
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd: ROOT, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 60_000);
    void exited.then(() => reject(new Error(`${name} exited: ${err}`)));
    child.stdout!.on('data', (d) => {
      out += d;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1]!;
      resolve({
        name,
        databaseUrl: null,
        pid: child.pid!,
        httpUrl: url,
        publishUrl: `${url}/publish`,
        protocol,
        wsUrl: async (channel) => `${url.replace('http', 'ws')}${wsPath(channel)}`,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}

/** Socket.IO 4 + @socket.io/postgres-adapter on Node. */
export function startSocketIo(databaseUrl: string): Promise<RunningSystem> {
  return startPeer('socketio', ['node', '--import', 'tsx', join(ROOT, 'bench', 'peers', 'socketio.ts')], { DATABASE_URL: databaseUrl }, 'socketio', (channel) =>
    `/socket.io/?EIO=4&transport=websocket&room=${encodeURIComponent(channel)}`,
  );
}

/** A bare Bun.serve pub/sub. */
export function startBunCeiling(): Promise<RunningSystem> {
  return startPeer('bun-ceiling', [join(BIN, 'bun'), join(ROOT, 'bench', 'peers', 'bun-ceiling.ts')], {}, 'ceiling', (channel) => `/?room=${encodeURIComponent(channel)}`);
}

/** A bare node:http + ws broadcast server. */
export function startWsCeiling(): Promise<RunningSystem> {
  return startPeer('ws-ceiling', ['node', '--import', 'tsx', join(ROOT, 'bench', 'peers', 'ws-ceiling.ts')], {}, 'ceiling', (channel) => `/?room=${encodeURIComponent(channel)}`);
}

/** The floor on a runtime, over `databaseUrl` (several share one database, like a cluster). */
export function startFloor(runtime: RuntimeName, databaseUrl: string): Promise<RunningSystem> {
  const script = join(ROOT, 'bench', 'peers', `floor-${runtime}.ts`);
  const cmd = runtime === 'bun' ? [join(BIN, 'bun'), script] : runtime === 'deno' ? [join(BIN, 'deno'), 'run', '-A', script] : ['node', '--import', 'tsx', script];
  return startPeer(`floor-${runtime}`, cmd, { DATABASE_URL: databaseUrl }, 'ceiling', (channel) => `/?room=${encodeURIComponent(channel)}`);
}

const FAR_MS = 60;

/** pgmesh on Bun reaching `databaseUrl` through a proxy that adds FAR_MS each way; the bench itself reads the database directly. */
async function startFar(databaseUrl: string, env: Record<string, string>): Promise<RunningSystem> {
  const distance = await startLatencyProxy(Number(new URL(databaseUrl).port), FAR_MS);
  const far = new URL(databaseUrl);
  far.port = String(distance.port);
  const system = await startPgmesh('bun', far.toString(), env, 'pgmesh-bun-far');
  return {
    ...system,
    databaseUrl,
    stop: async () => {
      await system.stop();
      await distance.close();
    },
  };
}

/** Starts a system by name. */
export function startSystem(name: SystemName, databaseUrl: string, env: Record<string, string> = {}): Promise<RunningSystem> {
  switch (name) {
    case 'pgmesh-bun':
      return startPgmesh('bun', databaseUrl, env);
    case 'pgmesh-bun-js-fanout':
      // Before/after of native fan-out, in the same run: pgmesh on Bun writing to each socket from JS.
      return startPgmesh('bun', databaseUrl, { ...env, MESH_NATIVE_FANOUT: 'false' }, name);
    case 'pgmesh-node':
      return startPgmesh('node', databaseUrl, env);
    case 'pgmesh-deno':
      return startPgmesh('deno', databaseUrl, env);
    case 'pgmesh-bun-embedded':
    case 'pgmesh-node-embedded':
    case 'pgmesh-deno-embedded':
      return startPgmesh(name.split('-')[1] as RuntimeName, null, env, name);
    case 'pgmesh-bun-pglite':
      return startPgmesh('bun', null, { ...env, MESH_EMBEDDED: 'pglite' }, name);
    case 'pgmesh-bun-far':
      return startFar(databaseUrl, env);
    case 'socketio':
      return startSocketIo(databaseUrl);
    case 'bun-ceiling':
      return startBunCeiling();
    case 'floor-bun':
    case 'floor-node':
    case 'floor-deno':
      return startFloor(name.slice(6) as RuntimeName, databaseUrl);
    case 'ws-ceiling':
      return startWsCeiling();
  }
}
