/**
 * Scenario 2, cross-instance: three instances on one Postgres, subscribers
 * spread over all three, publishes at a fixed rate through the first one.
 * Publish-to-deliver latency, and every subscriber must get every message.
 */
import type { RunningSystem } from '../systems.ts';
import { loopbacks, payload, percentile, startSubscribers, type SubscriberPool } from '../load.ts';

export interface CrossResult {
  system: string;
  rate: number;
  seconds: number;
  subscribers: number;
  achievedRate: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  errors: number;
  /** On the max-rate ladder: true for the highest rate held for the whole period, false for the first one not held. */
  held?: boolean;
}

/** Publishes `rate` messages/s for `seconds` through instances[0]; `perInstance` subscribers on each. */
export async function cross(instances: RunningSystem[], rate: number, seconds: number, perInstance: number): Promise<CrossResult> {
  const channel = `cross-${Date.now().toString(36)}`;
  const pools: SubscriberPool[] = [];
  try {
    for (const instance of instances) {
      pools.push(
        await startSubscribers(1, {
          url: await instance.wsUrl(channel),
          protocol: instance.protocol,
          count: perInstance,
          channel,
          localAddresses: loopbacks(2),
          sampleEvery: Math.max(1, Math.floor((rate * perInstance * instances.length) / 20_000)),
          concurrency: 32,
        }),
      );
    }
    await Promise.all(pools.map((p) => p.fresh()));
    for (const p of pools) p.drainSamples();
    // One publisher, in order: each round sends whatever the rate says is due, in one POST.
    const start = performance.now();
    let sent = 0;
    for (;;) {
      const elapsed = (performance.now() - start) / 1000;
      if (elapsed >= seconds) break;
      const due = Math.min(1000, Math.floor(elapsed * rate) - sent);
      if (due <= 0) {
        await new Promise((resolve) => setTimeout(resolve, 2)); // pacing the publisher to the rate
        continue;
      }
      const body = JSON.stringify(Array.from({ length: due }, (_, i) => ({ c: channel, d: payload(sent + i) })));
      const res = await fetch(instances[0]!.publishUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (!res.ok) throw new Error(`publish answered ${res.status}`);
      await res.arrayBuffer();
      sent += due;
    }
    const publishSeconds = (performance.now() - start) / 1000;
    const deadline = performance.now() + 20_000;
    while (pools.some((p) => p.min() < sent) && performance.now() < deadline) await Promise.all(pools.map((p) => p.fresh()));
    await Promise.all(pools.map((p) => p.fresh()));
    const samples = pools.flatMap((p) => p.drainSamples());
    return {
      system: instances[0]!.name,
      rate,
      seconds,
      subscribers: perInstance * instances.length,
      achievedRate: sent / publishSeconds,
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      max: samples.reduce((m, x) => (x > m ? x : m), samples.length ? -Infinity : NaN),
      lost: Math.max(0, ...pools.map((p) => sent - p.min())),
      errors: pools.reduce((n, p) => n + p.errors(), 0),
    };
  } finally {
    await Promise.all(pools.map((p) => p.stop()));
  }
}
