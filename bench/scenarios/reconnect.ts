/**
 * Reconnect storm (issue 25, item 4): instances on one Postgres each hold their share of
 * clients (bench/clients/reconnecting.ts: every client a user of its own in one of many
 * rooms, reconnecting with the bundled client's backoff through a balancer's round robin and
 * resuming with `since`). A publisher POSTs single messages to the rooms through the other
 * instances at a steady rate. Then one instance is SIGKILLed, or sent SIGTERM (it drains,
 * spreading its closes over MESH_DRAIN_TIME), and its clients come back to the others.
 *
 * Measured: the time from the signal until every client is subscribed again, each client's
 * own drop-to-back time, the publisher's p99 before and during the storm, the survivors'
 * open files and memory at their height, and the time until presence counts exactly the
 * clients there are (a killed instance's rows are reaped after MESH_INSTANCE_TTL). Then every
 * acknowledged message must have reached every client of its room exactly once.
 */
import postgres from 'postgres';
import { TEST_SECRET } from '../../test/harness/tokens.ts';
import type { ReconnectingConfig, ReconnectingReport } from '../clients/reconnecting.ts';
import { loopbacks, payload, percentile, spawnGenerator, startReporting, type ReportingProcesses } from '../load.ts';
import { spawnNativeReconnecting, tokensFile } from '../native.ts';
import type { PeaksReport } from '../clients/peaks.ts';
import { cpuMs, openFileLimit, postgresCpuMs } from '../proc.ts';
import type { RunningSystem } from '../systems.ts';

export interface ReconnectResult {
  system: string;
  signal: 'SIGKILL' | 'SIGTERM';
  instances: number;
  connections: number;
  /** Clients of the stopped instance that dropped and came back. */
  moved: number;
  /** From the signal until every client is subscribed again, s. */
  allBackSeconds: number;
  /** Each moved client's drop-to-resubscribed time, ms. */
  backP50: number;
  backP99: number;
  backMax: number;
  /** Connection attempts that failed along the way (refused, 503 while draining, timed out). */
  attemptsFailed: number;
  /** Whether the publisher POSTed to an instance holding no clients (the server API routed apart) rather than to the survivors. */
  publishingApart?: boolean;
  /** Whether it POSTed to the survivors' publish threads (MESH_PUBLISH_PORT) rather than to their main ports. */
  publishingToThreads?: boolean;
  /** The publisher's single POSTs: p99 before the signal and from it until presence settled, ms; failures. */
  publishP99Before: number;
  publishP99During: number;
  /** Every round's publishP99During, where the row is the median of several (it is chosen by all-back time, not by this). */
  publishP99DuringRounds?: number[];
  publishFailed: number;
  published: number;
  /** From the signal until presence counted exactly the clients there are, s. */
  presenceSettledSeconds: number;
  /** Acknowledged messages some client of its room never got, and deliveries out of sequence (gaps, duplicates). */
  lost: number;
  outOfOrder: number;
  expired: number;
  /** The survivors at the height of the storm: the most open files one held, its limit, and the most memory one used. */
  maxOpenFiles: number;
  openFileLimit: number;
  maxRssBytes: number;
  /** CPU in cores: the survivors (together), Postgres and the client processes; over the steady seconds before the signal, and from it until all were back. */
  coresBefore: { pgmesh: number; postgres: number; generators: number };
  coresDuring: { pgmesh: number; postgres: number; generators: number };
}

type CpuReading = { at: number; pgmesh: number; postgres: number; generators: number };

/** What each side spent between two readings, in cores. */
function cores(from: CpuReading, to: CpuReading): { pgmesh: number; postgres: number; generators: number } {
  const wall = to.at - from.at;
  return { pgmesh: (to.pgmesh - from.pgmesh) / wall, postgres: (to.postgres - from.postgres) / wall, generators: (to.generators - from.generators) / wall };
}

/** Clients per generator process (each has its own open-file limit of 20,000 here): Bun's, and the native generator's. */
const PER_PROCESS = { bun: 10_000, native: 19_000 };
const ROOM_PREFIX = 'storm-room-';
const BEFORE_MS = 3_000;
/** The publisher's first POSTs (new connections, code not yet optimised) are left out of "before". */
const WARM_UP_MS = 1_000;
const DEADLINE_MS = 120_000;

interface Pool extends ReportingProcesses<ReconnectingReport> {
  /** Drop-to-back times reported so far, ms. */
  samples: number[];
}

/** Where the clients run: Bun processes (bench/clients/reconnecting.ts), or the native generator's reconnect mode, the same clients at about half the CPU. */
export type ReconnectGenerator = 'bun' | 'native';

async function startPool(urls: string[], connections: number, rooms: number, generator: ReconnectGenerator): Promise<Pool> {
  const processes = Math.ceil(connections / PER_PROCESS[generator]);
  const per = Math.floor(connections / processes);
  const shares = Array.from({ length: processes }, (_, p) => ({ first: p * per + Math.min(p, connections % processes), count: per + (p < connections % processes ? 1 : 0) }));
  const tokens = generator === 'native' ? await Promise.all(shares.map(({ first, count }, p) => tokensFile(`back-${p}`, TEST_SECRET, 'back-', first, count))) : [];
  const addresses = loopbacks(2 * processes);
  const samples: number[] = [];
  const running = await startReporting<ReconnectingReport>(
    processes,
    (p) => {
      const { first, count } = shares[p]!;
      if (generator === 'native') {
        return spawnNativeReconnecting({ urls, first, count, rooms, roomPrefix: ROOM_PREFIX, tokens: tokens[p]!, localAddresses: addresses.slice(2 * p, 2 * p + 2), concurrency: 64 });
      }
      const config: ReconnectingConfig = { urls, first, count, rooms, roomPrefix: ROOM_PREFIX, secret: TEST_SECRET, prefix: 'back-', concurrency: 64 };
      return spawnGenerator('reconnecting.ts', { RECONNECTING: JSON.stringify(config) }, 'bun');
    },
    undefined,
    (report) => samples.push(...report.samples),
  );
  // Every process has reported once: the sums below count them all.
  await running.fresh();
  return { ...running, samples };
}

const sum = (pool: Pool, key: 'connected' | 'drops' | 'back' | 'attemptsFailed' | 'errors' | 'expired') => pool.reports.reduce((n, r) => n + r[key], 0);

/** One room's fewest messages held by any of its clients, over every process. */
function roomMin(pool: Pool, room: number): number {
  let min = Infinity;
  for (const r of pool.reports) if (r.roomMin[room] != null && r.roomMin[room]! < min) min = r.roomMin[room]!;
  return min;
}

/** A publisher of single POSTs, one lane per room so each room's messages are in order, spread over `urls` by turns. */
function startPublisher(urls: string[], rooms: number, ratePerSec: number) {
  const acked = new Array<number>(rooms).fill(0);
  const times: { at: number; ms: number }[] = [];
  let failed = 0;
  let running = true;
  let turn = 0;
  const everyMs = (rooms / ratePerSec) * 1000;
  const lanes = Array.from({ length: rooms }, async (_, room) => {
    await new Promise((resolve) => setTimeout(resolve, (room / rooms) * everyMs)); // staggering the lanes over one period
    while (running) {
      const started = performance.now();
      const response = await fetch(urls[turn++ % urls.length]!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ c: `${ROOM_PREFIX}${room}`, d: payload(acked[room]!, room) }),
      }).catch(() => null);
      await response?.arrayBuffer();
      if (response?.status === 200) {
        acked[room]!++;
        times.push({ at: started, ms: performance.now() - started });
      } else failed++;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, everyMs - (performance.now() - started)))); // pacing the lane
    }
  });
  return {
    acked,
    times,
    failed: () => failed,
    stop: async () => {
      running = false;
      await Promise.all(lanes);
    },
  };
}

/**
 * Fills `instances` with `perInstance` clients each, publishes `rate` msg/s over `rooms` rooms through all
 * but the last instance (or through `apart`, an instance holding no clients), then stops the last one with
 * `signal` and measures the storm.
 */
export async function reconnectStorm(
  instances: RunningSystem[],
  databaseUrl: string,
  perInstance: number,
  signal: 'SIGKILL' | 'SIGTERM',
  traffic: { rooms: number; rate: number },
  generator: ReconnectGenerator = 'bun',
  apart?: RunningSystem,
): Promise<ReconnectResult> {
  const connections = perInstance * instances.length;
  const victim = instances[instances.length - 1]!;
  const survivors = instances.slice(0, -1);
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const urls = instances.map((i) => `${i.httpUrl.replace('http', 'ws')}/v1/ws`);
  const pool = await startPool(urls, connections, traffic.rooms, generator);
  // The survivors' open files and memory, sampled by a process of its own (bench/clients/peaks.ts): never on
  // this thread, where the publisher runs.
  const peaks = await startReporting<PeaksReport>(1, () => spawnGenerator('peaks.ts', { PEAKS_PIDS: survivors.map((s) => s.pid).join(',') }, 'bun'), { maxOpenFiles: 0, maxRssBytes: 0 }, () => {}).catch(async (err: unknown) => {
    await pool.stop();
    throw err;
  });
  const publisher = startPublisher(
    apart ? [apart.publishUrl] : survivors.map((s) => s.threadPublishUrl ?? s.publishUrl),
    traffic.rooms,
    traffic.rate,
  );
  try {
    console.error(`bench:   ${connections} clients in; publishing ${traffic.rate} msg/s; ${signal} in ${(WARM_UP_MS + BEFORE_MS) / 1000} s`);
    const cpu = () => ({ at: performance.now(), pgmesh: survivors.reduce((n, i) => n + cpuMs(i.pid), 0), postgres: postgresCpuMs(), generators: pool.reports.reduce((n, r) => n + r.cpuMs, 0) });
    await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS)); // the publisher warming up
    const beforeFrom = performance.now();
    const cpu0 = cpu();
    await new Promise((resolve) => setTimeout(resolve, BEFORE_MS)); // the publisher's steady state before the signal
    const cpu1 = cpu();
    const signalled = performance.now();
    pool.samples.length = 0;
    process.kill(victim.pid, signal);
    let allBack = NaN;
    let presenceSettled = NaN;
    let cpu2 = cpu1;
    const deadline = signalled + DEADLINE_MS;
    // Every client subscribed again (after at least one drop), and presence counting exactly them.
    while (performance.now() < deadline && (Number.isNaN(allBack) || Number.isNaN(presenceSettled))) {
      await Promise.race([pool.fresh(), new Promise((resolve) => setTimeout(resolve, 1000))]); // a report, or a second without one
      const now = performance.now();
      // All back: every client of the stopped instance dropped (a drain spreads them out) and is subscribed again.
      if (Number.isNaN(allBack) && sum(pool, 'drops') >= perInstance && sum(pool, 'connected') === connections && sum(pool, 'back') === sum(pool, 'drops')) {
        allBack = now;
        cpu2 = cpu();
      }
      if (Number.isNaN(presenceSettled) && !Number.isNaN(allBack)) {
        const [row] = await sql`select count(*)::int8 as n from mesh_connection`;
        if (Number(row!.n) === connections) presenceSettled = performance.now();
      }
    }
    await peaks.fresh(); // a sample taken after all were back
    const during = publisher.times.filter((t) => t.at >= signalled && t.at <= (Number.isNaN(presenceSettled) ? deadline : presenceSettled)).map((t) => t.ms);
    const before = publisher.times.filter((t) => t.at >= beforeFrom && t.at < signalled).map((t) => t.ms);
    await publisher.stop();
    // Every acknowledged message reaches every client of its room (within 30 s of the last publish).
    const settle = performance.now() + 30_000;
    const missing = () => publisher.acked.reduce((n, count, room) => n + Math.max(0, count - roomMin(pool, room)), 0);
    while (missing() > 0 && performance.now() < settle) await pool.fresh();
    return {
      system: victim.name,
      signal,
      instances: instances.length,
      connections,
      moved: sum(pool, 'back'),
      allBackSeconds: (allBack - signalled) / 1000,
      backP50: percentile(pool.samples, 50),
      backP99: percentile(pool.samples, 99),
      backMax: pool.samples.reduce((a, b) => Math.max(a, b), 0),
      attemptsFailed: sum(pool, 'attemptsFailed'),
      ...(apart && { publishingApart: true }),
      ...(!apart && survivors[0]!.threadPublishUrl !== undefined && { publishingToThreads: true }),
      publishP99Before: percentile(before, 99),
      publishP99During: percentile(during, 99),
      publishFailed: publisher.failed(),
      published: publisher.acked.reduce((a, b) => a + b, 0),
      presenceSettledSeconds: (presenceSettled - signalled) / 1000,
      lost: missing(),
      outOfOrder: sum(pool, 'errors'),
      expired: sum(pool, 'expired'),
      openFileLimit: openFileLimit(survivors[0]!.pid),
      coresBefore: cores(cpu0, cpu1),
      coresDuring: cores(cpu1, cpu2),
      ...peaks.reports[0]!,
    };
  } finally {
    await publisher.stop();
    await peaks.stop();
    await pool.stop();
    await sql.end();
  }
}
