/**
 * At size (issue 25, items 1 and 3): several instances on one Postgres, each
 * holding what its open-file limit allows, every connection a user of its own,
 * authenticated and subscribed to its user channel and one shared room. Then:
 *
 * - idle: each instance's CPU and memory per connection (its share of the
 *   instance included), and what presence costs in Postgres (rows and bytes);
 * - one message to the room: delivered to every connection of the cluster,
 *   with its p99 per instance and overall;
 * - a steady rate to the room (100 messages/s at the quick size; 10 at full
 *   size, where 100k connections make that a million deliveries a second, what
 *   this 2-core machine's fan-out bench shows one instance can do alone): every
 *   connection gets every one, in order, and how far the slowest falls behind.
 *
 * The connections come from load-generator processes of their own (each process
 * has its open-file limit too), spread over loopback source addresses (each has
 * ~28k ephemeral ports).
 */
import postgres from 'postgres';
import { loopbacks, payload, percentile, startSubscribers, type SubscriberPool } from '../load.ts';
import { cpuMs, rssBytes } from '../proc.ts';
import type { RunningSystem } from '../systems.ts';
import { TEST_SECRET } from '../../test/harness/tokens.ts';

export interface AtSizeResult {
  system: string;
  instances: number;
  connections: number;
  /** From the first connect to the last subscribe reply, all instances at once. */
  connectSeconds: number;
  connectPerSec: number;
  /** Idle: the instances' memory per connection (RSS growth over the connections), and each instance's CPU, in cores (the busiest). */
  bytesPerConnection: number;
  idleCoresMax: number;
  /** Presence in Postgres: rows, and the tables' size per connection. */
  presenceRows: number;
  presenceBytesPerConnection: number;
  /** One message to the room: p99 over every connection, and the worst instance's p99, ms. */
  onceP99: number;
  onceWorstInstanceP99: number;
  onceMax: number;
  /** The steady rate (msg/s to the room): p99 and max delivery time, and messages not delivered (must be 0). */
  steadyRate: number;
  steadyP99: number;
  steadyMax: number;
  lost: number;
  outOfOrder: number;
  /** The load generators' CPU over the whole run, in cores (they share the machine). */
  generatorCores: number;
  /** While the steady rate was delivered: the pgmesh instances' CPU and the generators', in cores (which side the two cores went to). */
  steadyServerCores: number;
  steadyGeneratorCores: number;
}

const ROOM = 'at-size-room';
/**
 * The generators are native (bench/clients/wsclients.c): Bun's spent as much CPU receiving as the
 * servers did sending, and Node's `ws` more, so on one machine they measured themselves.
 */
const GENERATOR = 'native';
/** One generator process per instance (each process may open 20,000 files here): fewer processes to schedule on 2 cores. */
const PER_PROCESS = 19_000;
const IDLE_SECONDS = 20;

/** Fills `instances` with `perInstance` connections each and measures; the instances run on `databaseUrl`. */
export async function atSize(instances: RunningSystem[], databaseUrl: string, perInstance: number, steady: { rate: number; seconds: number }): Promise<AtSizeResult> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const pools: SubscriberPool[] = [];
  const rss0 = instances.map((i) => rssBytes(i.pid));
  const addresses = loopbacks(32);
  try {
    const started = performance.now();
    await Promise.all(
      instances.map(async (instance, k) => {
        const processes = Math.max(1, Math.ceil(perInstance / PER_PROCESS));
        pools[k] = await startSubscribers(processes, {
          url: (await instance.wsUrl(ROOM)).replace(/\?.*$/, ''),
          protocol: 'pgmesh',
          count: perInstance,
          channel: ROOM,
          users: { secret: TEST_SECRET, prefix: `u${k}-` },
          localAddresses: addresses.slice((k * 6) % 30, ((k * 6) % 30) + 6),
          // One delivery in 50 is timed: a uniform sample, small enough to carry at 100 msg/s to every connection.
          sampleEvery: 50,
          concurrency: 64,
        }, GENERATOR);
      }),
    );
    const connectSeconds = (performance.now() - started) / 1000;
    console.error(`bench:   ${perInstance * instances.length} connections in ${connectSeconds.toFixed(1)} s`);
    const connections = perInstance * instances.length;
    // Presence written: every connection and both its subscriptions are rows (read-your-writes holds per reply; this waits for all).
    const deadline = performance.now() + 60_000;
    let presenceRows = 0;
    while (performance.now() < deadline) {
      const [row] = await sql`select (select count(*) from mesh_connection)::int8 + (select count(*) from mesh_subscription)::int8 as n`;
      presenceRows = Number(row!.n);
      if (presenceRows >= connections * 3) break;
      await new Promise((resolve) => setTimeout(resolve, 500)); // polling the rows until the deadline
    }
    const [size] = await sql`select (pg_total_relation_size('mesh_connection') + pg_total_relation_size('mesh_subscription'))::int8 as bytes`;

    // Idle: nothing published; heartbeats, presence refresh and the console report go on.
    const cpu0 = instances.map((i) => cpuMs(i.pid));
    const idleStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000)); // the idle period being measured
    const idleWall = performance.now() - idleStart;
    const idleCoresMax = Math.max(...instances.map((i, k) => (cpuMs(i.pid) - cpu0[k]!) / idleWall));
    const grown = instances.reduce((sum, i, k) => sum + rssBytes(i.pid) - rss0[k]!, 0);
    for (const p of pools) p.drainSamples();

    console.error(`bench:   idle measured; one message to the room`);
    // One message to the room.
    const publishUrl = instances[0]!.publishUrl;
    await post(publishUrl, { c: ROOM, d: payload(0) });
    await deliveredAll(pools, 1);
    const perInstanceSamples = pools.map((p) => p.drainSamples());
    const once = perInstanceSamples.flat();

    console.error(`bench:   a steady ${steady.rate} msg/s for ${steady.seconds} s`);
    // A steady rate.
    let sent = 1;
    const server0 = instances.reduce((n, i) => n + cpuMs(i.pid), 0);
    const generators0 = pools.reduce((n, p) => n + p.cpuMs(), 0);
    const steadyStart = performance.now();
    while (performance.now() - steadyStart < steady.seconds * 1000) {
      const due = Math.floor(((performance.now() - steadyStart) / 1000) * steady.rate) + 1 - sent;
      if (due > 0) {
        await post(publishUrl, Array.from({ length: due }, (_, i) => ({ c: ROOM, d: payload(sent + i) })));
        sent += due;
      }
      await new Promise((resolve) => setTimeout(resolve, 5)); // pacing the publisher to the rate
    }
    await deliveredAll(pools, sent);
    const steadyWall = performance.now() - steadyStart;
    const steadyServerCores = (instances.reduce((n, i) => n + cpuMs(i.pid), 0) - server0) / steadyWall;
    const steadyGeneratorCores = (pools.reduce((n, p) => n + p.cpuMs(), 0) - generators0) / steadyWall;
    const steadySamples = pools.flatMap((p) => p.drainSamples());
    return {
      system: instances[0]!.name,
      instances: instances.length,
      connections,
      connectSeconds,
      connectPerSec: connections / connectSeconds,
      bytesPerConnection: grown / connections,
      idleCoresMax,
      presenceRows,
      presenceBytesPerConnection: Number(size!.bytes) / connections,
      onceP99: percentile(once, 99),
      onceWorstInstanceP99: Math.max(...perInstanceSamples.map((s) => percentile(s, 99))),
      onceMax: largest(once),
      steadyRate: steady.rate,
      steadyP99: percentile(steadySamples, 99),
      steadyMax: largest(steadySamples),
      lost: Math.max(0, ...pools.map((p) => sent - p.min())),
      outOfOrder: pools.reduce((n, p) => n + p.errors(), 0),
      generatorCores: pools.reduce((n, p) => n + p.cpuMs(), 0) / 1000 / ((performance.now() - started) / 1000),
      steadyServerCores,
      steadyGeneratorCores,
    };
  } finally {
    await Promise.all(pools.filter(Boolean).map((p) => p.stop()));
    await sql.end();
  }
}

// A loop, not Math.max(...samples): spreading a few hundred thousand samples overflows the stack.
function largest(samples: number[]): number {
  let max = Number.NaN;
  for (const x of samples) if (!(x <= max)) max = x;
  return max;
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`publish answered ${res.status}`);
  await res.arrayBuffer();
}

/** Waits until every connection of every pool got `count` messages (or 60 s passed: the result then says what was lost). */
async function deliveredAll(pools: SubscriberPool[], count: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  while (pools.some((p) => p.min() < count) && performance.now() < deadline) await Promise.all(pools.map((p) => p.fresh()));
  await Promise.all(pools.map((p) => p.fresh()));
}
