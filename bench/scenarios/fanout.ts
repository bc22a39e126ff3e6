/**
 * Scenario 1, fan-out: one channel, N subscribers on one instance (WebSockets,
 * pgmesh's SSE streams, or Mercure subscribers' EventSource streams),
 * 100-byte messages published as fast as the slowest subscriber keeps up (a
 * bounded window of undelivered messages), then every connection must have
 * every message once, in order. Published in batches, or — to set Mercure beside
 * pgmesh's own SSE on equal terms, as Mercure has no batches — as single POSTs
 * from 16 publishers at once (a Mercure form POST each, or a /v1/mesh/publish each).
 */
import { token, type RunningSystem } from '../systems.ts';
import { SignJWT } from 'jose';
import { loopbacks, payload, percentile, publishBatch, publishSingle, startSubscribers } from '../load.ts';
import { cpuMs } from '../proc.ts';

export interface FanoutResult {
  system: string;
  transport: 'websocket' | 'sse' | 'mercure';
  /** How messages were published (absent in older results: batches). */
  publishing?: 'batches' | 'single POSTs';
  /** Messages published per second (the single-POST runs' publish throughput). */
  publishedPerSec?: number;
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
/** Publishers sending single POSTs at once. */
const LANES = 16;
/** The Mercure publishers' key (the hub under test is started with it). */
export const MERCURE_BENCH_KEY = 'bench-mercure-key-0123456789';

/** Runs fan-out against `system` with `subscribers` connections for `seconds`. */
export async function fanout(
  system: RunningSystem,
  subscribers: number,
  seconds: number,
  transport: FanoutResult['transport'] = 'websocket',
  clientProcesses = 2,
  publishing: NonNullable<FanoutResult['publishing']> = 'batches',
): Promise<FanoutResult> {
  const channel = `bench-${Date.now().toString(36)}`;
  const posts = publishing === 'single POSTs';
  const url =
    transport === 'sse' ? `${system.httpUrl}/v1/sse?channel=${channel}&token=${await token()}` : transport === 'mercure' ? `${system.httpUrl}/.well-known/mercure?topic=${channel}` : await system.wsUrl(channel);
  const pool = await startSubscribers(clientProcesses, {
    url,
    // A Mercure event is `id:` + `data:` lines too: the same reader takes both.
    protocol: transport === 'websocket' ? system.protocol : 'pgmesh-sse',
    count: subscribers,
    channel,
    localAddresses: loopbacks(4),
    sampleEvery: Math.max(1, Math.floor(subscribers / 20)),
    concurrency: 64,
    ...(posts ? { lanes: LANES } : {}),
  });
  const publishOne = transport === 'mercure' ? await mercurePublisher(system, channel) : (data: string) => publishSingle(system.publishUrl, channel, data);
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
    if (posts) {
      // Each publisher numbers its own messages: order is checked per publisher.
      await Promise.all(
        Array.from({ length: LANES }, async (_, lane) => {
          for (let seq = 0; performance.now() < until; ) {
            if (sent - pool.min() < window) {
              await publishOne(payload(seq++, lane));
              sent++;
            } else {
              await pool.fresh();
            }
          }
        }),
      );
    } else {
      while (performance.now() < until) {
        if (sent - pool.min() < window) {
          await publishBatch(system.publishUrl, channel, sent, batch);
          sent += batch;
        } else {
          await pool.fresh();
        }
      }
    }
    const publishedPerSec = sent / ((performance.now() - start) / 1000);
    const deadline = performance.now() + 20_000;
    while (pool.min() < sent && performance.now() < deadline) await pool.fresh();
    const elapsed = (performance.now() - start) / 1000;
    await pool.fresh();
    const samples = pool.drainSamples();
    const delivered = pool.reports.reduce((n, r) => n + r.total, 0);
    return {
      system: system.name,
      transport,
      publishing,
      publishedPerSec,
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

/** Publishes one Mercure update a call, as a Symfony app does: a form POST with a publisher token. */
async function mercurePublisher(system: RunningSystem, topic: string): Promise<(data: string) => Promise<void>> {
  const jwt = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(MERCURE_BENCH_KEY));
  const hub = `${system.httpUrl}/.well-known/mercure`;
  return async (data) => {
    const res = await fetch(hub, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ topic, data }) });
    if (!res.ok) throw new Error(`mercure publish answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };
}
