/**
 * Scenario 1, fan-out: one channel, N subscribers on one instance (WebSockets,
 * or pgmesh's SSE streams),
 * 100-byte messages published in batches as fast as the slowest subscriber keeps
 * up (a bounded window of undelivered messages), then every connection must
 * have every message once, in order.
 */
import { token, type RunningSystem } from '../systems.ts';
import { loopbacks, percentile, publishBatch, startSubscribers } from '../load.ts';
import { cpuMs } from '../proc.ts';

export interface FanoutResult {
  system: string;
  transport: 'websocket' | 'sse';
  subscribers: number;
  sent: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  max: number;
  /** Messages some connection never got, and deliveries out of sequence. */
  lost: number;
  errors: number;
  /** Connections that dropped during the run. */
  closed: number;
  /** Cores used, by the server and by the load generator. */
  serverCores: number;
  clientCores: number;
}

// Deliveries allowed in flight past the slowest subscriber: deep enough to keep the
// server busy, shallow enough not to measure buffering.
const IN_FLIGHT_DELIVERIES = 1_000_000;

/** Runs fan-out against `system` with `subscribers` connections for `seconds`. */
export async function fanout(system: RunningSystem, subscribers: number, seconds: number, transport: FanoutResult['transport'] = 'websocket', clientProcesses = 2): Promise<FanoutResult> {
  const channel = `bench-${Date.now().toString(36)}`;
  const sse = transport === 'sse';
  const pool = await startSubscribers(clientProcesses, {
    url: sse ? `${system.httpUrl}/v1/sse?channel=${channel}&token=${await token()}` : await system.wsUrl(channel),
    protocol: sse ? 'pgmesh-sse' : system.protocol,
    count: subscribers,
    channel,
    localAddresses: loopbacks(4),
    sampleEvery: Math.max(1, Math.floor(subscribers / 20)),
    concurrency: 64,
  });
  try {
    const window = Math.max(100, Math.floor(IN_FLIGHT_DELIVERIES / subscribers));
    const batch = Math.min(100, Math.max(10, Math.floor(window / 4)));
    await pool.fresh();
    pool.drainSamples();
    const clientCpu0 = pool.cpuMs();
    const serverCpu0 = cpuMs(system.pid);
    const start = performance.now();
    const until = start + seconds * 1000;
    let sent = 0;
    while (performance.now() < until) {
      if (sent - pool.min() < window) {
        await publishBatch(system.publishUrl, channel, sent, batch);
        sent += batch;
      } else {
        await pool.fresh();
      }
    }
    const deadline = performance.now() + 20_000;
    while (pool.min() < sent && performance.now() < deadline) await pool.fresh();
    const elapsed = (performance.now() - start) / 1000;
    await pool.fresh();
    const samples = pool.drainSamples();
    const delivered = pool.reports.reduce((n, r) => n + r.total, 0);
    return {
      system: system.name,
      transport,
      subscribers,
      sent,
      deliveriesPerSec: delivered / elapsed,
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      max: samples.reduce((m, x) => (x > m ? x : m), samples.length ? -Infinity : NaN),
      lost: Math.max(0, sent - pool.min()),
      errors: pool.errors(),
      closed: pool.closed(),
      serverCores: (cpuMs(system.pid) - serverCpu0) / 1000 / elapsed,
      clientCores: (pool.cpuMs() - clientCpu0) / 1000 / elapsed,
    };
  } finally {
    await pool.stop();
  }
}
