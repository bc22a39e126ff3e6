/**
 * A connect storm from one load-generator process: `count` WebSockets, `concurrency`
 * at a time, each a user of its own that connects, authenticates, subscribes to its
 * own channel and a shared room, and stays. It times each one from the TCP connect to
 * the subscribe reply (which pgmesh sends once the presence it implies is written)
 * and prints one JSON line when all are in: {opened, failed, seconds, samples}.
 *
 * Config comes as JSON in the STORM env variable (see StormConfig).
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';

export interface StormConfig {
  /** ws:// URL of /v1/ws, without a query. */
  url: string;
  count: number;
  concurrency: number;
  /** The HS256 secret tokens are signed with. */
  secret: string;
  /** Users are `<prefix><n>`: each process its own. */
  prefix: string;
  localAddresses: string[];
  /** Sign every token before the clock starts (the storm then times the server, not the signing). */
  presign?: boolean;
}

export interface StormReport {
  opened: number;
  failed: number;
  seconds: number;
  /** Connect-to-subscribed times, ms. */
  samples: number[];
  /** This process's CPU time over the storm, ms. */
  cpuMs: number;
}

const config = JSON.parse(process.env.STORM!) as StormConfig;
const key = new TextEncoder().encode(config.secret);
const sockets: WebSocket[] = [];
const samples: number[] = [];
let failed = 0;

const sign = (i: number) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`${config.prefix}${i}`).setExpirationTime('1h').sign(key);
let presigned: string[] = [];

async function one(i: number): Promise<void> {
  const jwt = presigned[i] ?? (await sign(i));
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const ws = new WebSocket(config.url, { localAddress: config.localAddresses[i % config.localAddresses.length], perMessageDeflate: false });
    const fail = () => {
      failed++;
      resolve();
    };
    ws.once('error', fail);
    ws.on('open', () => ws.send(JSON.stringify({ op: 'auth', token: jwt })));
    ws.on('message', (data) => {
      const reply = JSON.parse(data.toString()) as { op?: string; success?: boolean };
      if (reply.op === 'auth') {
        if (reply.success !== true) return fail();
        ws.send(JSON.stringify({ op: 'subscribe', channels: ['@user', 'storm-room'] }));
      } else if (reply.op === 'subscribe') {
        if (reply.success !== true) return fail();
        samples.push(performance.now() - started);
        ws.removeAllListeners('error');
        ws.on('error', () => {});
        sockets.push(ws);
        resolve();
      }
    });
  });
}

async function main(): Promise<void> {
  if (config.presign) presigned = await Promise.all(Array.from({ length: config.count }, (_, i) => sign(i)));
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  let next = 0;
  const lane = async () => {
    while (next < config.count) await one(next++);
  };
  await Promise.all(Array.from({ length: config.concurrency }, lane));
  const cpu = process.cpuUsage(cpu0);
  const report: StormReport = { opened: sockets.length, failed, seconds: (performance.now() - started) / 1000, samples, cpuMs: (cpu.user + cpu.system) / 1000 };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  // Held open until the orchestrator has read the system's state, then closed with the process.
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`storm: ${(err as Error).message}\n`);
  process.exit(1);
});
