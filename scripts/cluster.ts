/**
 * `npm run cluster`: a pgmesh cluster on a laptop. An embedded Postgres, three
 * instances named like regions — the last one 60 ms each way from the database,
 * as a machine outside the primary region is — and a front door that hands
 * each request and each WebSocket to the next instance in turn, with no
 * stickiness (as a plain balancer does). Open the front door in a browser: the
 * demo page says which instance and region each connection landed on.
 *
 * Settings: CLUSTER_PORT (8080), CLUSTER_RUNTIME (node | bun | deno),
 * CLUSTER_REGIONS (fra,iad,syd), CLUSTER_LATENCY_MS (60). Ctrl-C stops it all.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { freshDatabase, stopPostgresServer } from '../test/harness/postgres.ts';
import { startProcess, type MeshProcess, type RuntimeName } from '../test/harness/process.ts';
import { startLatencyProxy } from '../test/harness/tcp-proxy.ts';

const FRONT_PORT = Number(process.env.CLUSTER_PORT ?? 8080);
const RUNTIME = (process.env.CLUSTER_RUNTIME ?? 'node') as RuntimeName;
const REGIONS = (process.env.CLUSTER_REGIONS ?? 'fra,iad,syd').split(',');
const LATENCY_MS = Number(process.env.CLUSTER_LATENCY_MS ?? 60);
// One secret for every instance, so a token works on all of them; the front door mints demo tokens with it.
const SECRET = randomBytes(32).toString('hex');

/** The front door: round robin over `instances`, requests and WebSocket upgrades alike; /v1/dev/token served here. */
function frontDoor(instances: MeshProcess[]): Promise<string> {
  let next = 0;
  const pick = () => instances[next++ % instances.length]!;
  const key = new TextEncoder().encode(SECRET);
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://front');
    if (url.pathname === '/v1/dev/token') {
      const uid = url.searchParams.get('uid') ?? '';
      if (!/^[\w.-]{1,64}$/.test(uid)) return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"code":"ERR_BAD_ARGS"}');
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(uid).setExpirationTime('12h').sign(key);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
    }
    const target = pick();
    const upstream = request({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.headersSent || res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const target = pick();
    const upstream = connect(target.port, '127.0.0.1', () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${lines}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    for (const s of [socket, upstream]) {
      s.on('error', () => {});
      s.on('close', () => (socket.destroy(), upstream.destroy()));
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(FRONT_PORT, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`));
  });
}

async function main(): Promise<void> {
  console.error('cluster: starting an embedded Postgres…');
  const database = new URL(await freshDatabase());
  const farProxy = await startLatencyProxy(Number(database.port), LATENCY_MS);
  const instances: MeshProcess[] = [];
  const stopAll = async () => {
    await Promise.all(instances.map((i) => i.stop('SIGTERM')));
    await stopPostgresServer();
    process.exit(0);
  };
  process.once('SIGINT', () => void stopAll());
  process.once('SIGTERM', () => void stopAll());
  for (const [i, region] of REGIONS.entries()) {
    const far = i === REGIONS.length - 1 && REGIONS.length > 1;
    const url = new URL(database);
    if (far) url.port = String(farProxy.port);
    instances.push(
      await startProcess(RUNTIME, {
        DATABASE_URL: url.toString(),
        JWT_SECRET: SECRET,
        MESH_INSTANCE_ID: `${region}-1`,
        MESH_REGION: region,
        MESH_DRAIN_TIME: '3s',
      }),
    );
    console.log(`  ${region}-1 (${region})  ${instances.at(-1)!.url}${far ? `   ${LATENCY_MS} ms each way from the database` : ''}`);
  }
  const front = await frontDoor(instances);
  console.log(`front door (round robin, no stickiness): ${front}   open it in a browser; Ctrl-C stops everything`);
  console.log(`cluster ready on ${front}`);
}

main().catch((err) => {
  console.error('cluster: could not start:', err);
  process.exit(1);
});
