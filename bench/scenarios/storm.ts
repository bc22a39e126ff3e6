/**
 * Connect storm: N clients connect, authenticate and subscribe (their own channel
 * and a shared room) as fast as two load-generator processes can open them, while a
 * publisher beside them POSTs 100 messages a second. Each client's time is from TCP
 * connect to its subscribe reply — which pgmesh sends once the presence it implies is
 * written (read-your-writes) — so this is also what that guarantee costs. At the end
 * the server API must count every client in the room.
 */
import { TEST_SECRET } from '../../test/harness/tokens.ts';
import type { StormConfig, StormReport } from '../clients/storm.ts';
import { loopbacks, payload, percentile, spawnGenerator } from '../load.ts';
import { spawnNative, tokensFile } from '../native.ts';
import { cpuMs, postgresCpuMs } from '../proc.ts';
import type { RunningSystem } from '../systems.ts';

export interface StormResult {
  system: string;
  connections: number;
  /** Clients in (subscribed) per second, over the whole storm. */
  perSec: number;
  /** Connect-to-subscribed, ms. */
  p50: number;
  p99: number;
  failed: number;
  /** The publisher beside the storm: p99 of its POSTs, ms, and how many failed. */
  publishP99: number;
  /** Every round's publishP99, where the row is the median of several (it is chosen by rate, not by this). */
  publishP99Rounds?: number[];
  publishFailed: number;
  /** What the server API counted in the room right after the last reply (must be every client). */
  listed: number;
  /** CPU over the storm, in cores: the pgmesh process, Postgres, and the generators (absent in results written before). */
  serverCores?: number;
  postgresCores?: number;
  generatorCores?: number;
}

const PROCESSES = 2;
const PUBLISH_EVERY_MS = 10;

/**
 * Storms `system` with `connections` clients. `generator` runs the client processes on Node (`ws`),
 * Bun, or natively (bench/clients/wsclients.c, which always has its tokens signed first); `presign` signs
 * every token before the clock starts (the at-size storm: the server is timed);
 * `concurrency` is the clients each process has connecting at once (64).
 */
export async function storm(system: RunningSystem, connections: number, options: { generator?: 'node' | 'bun' | 'native'; presign?: boolean; concurrency?: number } = {}): Promise<StormResult> {
  const url = (await system.wsUrl('storm-room')).replace(/\?.*$/, '');
  const share = (p: number) => Math.floor(connections / PROCESSES) + (p < connections % PROCESSES ? 1 : 0);
  // The native generator reads its tokens from a file, signed before the clock starts.
  const tokens = options.generator === 'native' ? await Promise.all(Array.from({ length: PROCESSES }, (_, p) => tokensFile(`storm${p}`, TEST_SECRET, `storm${p}-`, 0, share(p)))) : [];
  const cpu0 = cpuMs(system.pid);
  const pg0 = postgresCpuMs();
  const started = performance.now();
  const children = Array.from({ length: PROCESSES }, (_, p) => {
    const localAddresses = loopbacks(8).slice(p * 4, p * 4 + 4);
    const concurrency = options.concurrency ?? 64;
    const child =
      options.generator === 'native'
        ? spawnNative({ mode: 'storm', url, count: share(p), channel: 'storm-room', tokens: tokens[p], localAddresses, concurrency })
        : spawnGenerator('storm.ts', { STORM: JSON.stringify({ url, count: share(p), concurrency, secret: TEST_SECRET, prefix: `storm${p}-`, localAddresses, presign: options.presign } satisfies StormConfig) }, options.generator ?? 'node', 'pipe');
    child.stderr!.pipe(process.stderr);
    return child;
  });
  const reports = children.map(
    (child) =>
      new Promise<StormReport>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n'))) as StormReport);
        });
        child.once('exit', (code) => reject(new Error(`storm process exited with ${code}`)));
      }),
  );
  // The publisher beside it, at a fixed pace, until the storm is in.
  const publishTimes: number[] = [];
  let publishFailed = 0;
  let seq = 0;
  let storming = true;
  const publisher = (async () => {
    while (storming) {
      const started = performance.now();
      const response = await fetch(system.publishUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'storm-news', d: payload(seq++) }) }).catch(() => null);
      if (response?.status === 200) publishTimes.push(performance.now() - started);
      else publishFailed++;
      await response?.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, PUBLISH_EVERY_MS - (performance.now() - started))));
    }
  })();
  try {
    const done = await Promise.all(reports);
    const serverCores = (cpuMs(system.pid) - cpu0) / (performance.now() - started);
    const postgresCores = (postgresCpuMs() - pg0) / (performance.now() - started);
    storming = false;
    await publisher;
    const room = (await (await fetch(`${system.httpUrl}/v1/mesh/channels/storm-room`)).json()) as { subscribers?: number };
    const samples = done.flatMap((r) => r.samples);
    const opened = done.reduce((n, r) => n + r.opened, 0);
    return {
      system: system.name,
      connections,
      perSec: opened / Math.max(...done.map((r) => r.seconds)),
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      failed: done.reduce((n, r) => n + r.failed, 0),
      publishP99: percentile(publishTimes, 99),
      publishFailed,
      listed: room.subscribers ?? 0,
      serverCores,
      postgresCores,
      generatorCores: done.reduce((n, r) => n + r.cpuMs, 0) / (1000 * Math.max(...done.map((r) => r.seconds))),
    };
  } finally {
    storming = false;
    for (const child of children) child.stdin!.end();
    await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : null)));
  }
}
