/**
 * Scenario 2, cross-instance: three instances on one Postgres, subscribers
 * spread over all three, publishes at a fixed rate through the first one.
 * Publish-to-deliver latency, and every subscriber must get every message.
 *
 * Two shapes of publisher: `in-order`, one program sending whatever is due in
 * one batched POST at a time; and `single-posts`, the php-fpm shape — 16
 * workers, each POSTing one message and waiting for the answer before its next,
 * together at the rate (order is then checked per worker).
 *
 * Each run starts with WARMUP_SECONDS of the same load, checked but not timed: a
 * server that just started is still compiling its hot paths, and its first
 * seconds (5-9 ms event-loop stalls on Node here) say nothing about one that
 * has been up for a day.
 */
import { Agent, request } from 'node:http';
import type { RunningSystem } from '../systems.ts';
import { loopbacks, payload, percentile, startSubscribers, type SubscriberPool } from '../load.ts';

export type CrossShape = 'in-order' | 'single-posts';
const WORKERS = 16;
const WARMUP_SECONDS = 2;

export interface CrossResult {
  system: string;
  /** Absent in results written before the single-posts shape existed: those are in-order. */
  shape?: CrossShape;
  rate: number;
  seconds: number;
  subscribers: number;
  achievedRate: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  errors: number;
  /** single-posts: the p99 of the POST's own answer (ms). */
  answerP99?: number;
  /** On the max-rate ladder: true for the highest rate held for the whole period, false for the first one not held. */
  held?: boolean;
}

/** Publishes `rate` messages/s for `seconds` through instances[0]; `perInstance` subscribers on each. */
export async function cross(instances: RunningSystem[], rate: number, seconds: number, perInstance: number, shape: CrossShape = 'in-order'): Promise<CrossResult> {
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
          // The warm-up's workers are lanes 0-15, the measured ones 16-31.
          lanes: shape === 'single-posts' ? 2 * WORKERS : undefined,
        }),
      );
    }
    await Promise.all(pools.map((p) => p.fresh()));
    const url = instances[0]!.publishUrl;
    const publish = (secs: number, firstSeq: number, lane0: number) =>
      shape === 'in-order' ? publishInOrder(url, channel, rate, secs, firstSeq) : publishSingles(url, channel, rate, secs, lane0);
    const delivered = async (sent: number) => {
      const deadline = performance.now() + 20_000;
      while (pools.some((p) => p.min() < sent) && performance.now() < deadline) await Promise.all(pools.map((p) => p.fresh()));
      await Promise.all(pools.map((p) => p.fresh()));
    };
    const warm = await publish(WARMUP_SECONDS, 0, 0);
    await delivered(warm.sent);
    for (const p of pools) p.drainSamples();
    const start = performance.now();
    const { answers, ...measured } = await publish(seconds, warm.sent, WORKERS);
    const publishSeconds = (performance.now() - start) / 1000;
    const sent = warm.sent + measured.sent;
    await delivered(sent);
    const samples = pools.flatMap((p) => p.drainSamples());
    return {
      system: instances[0]!.name,
      shape,
      rate,
      seconds,
      subscribers: perInstance * instances.length,
      achievedRate: measured.sent / publishSeconds,
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      max: samples.reduce((m, x) => (x > m ? x : m), samples.length ? -Infinity : NaN),
      lost: Math.max(0, ...pools.map((p) => sent - p.min())),
      errors: pools.reduce((n, p) => n + p.errors(), 0),
      ...(answers.length ? { answerP99: percentile(answers, 99) } : {}),
    };
  } finally {
    await Promise.all(pools.map((p) => p.stop()));
  }
}

interface Published {
  sent: number;
  /** How long each POST took to answer (ms); single-posts only. */
  answers: number[];
}

/** One publisher, in order: each round sends whatever the rate says is due, in one POST; sequence numbers from `firstSeq`. */
async function publishInOrder(url: string, channel: string, rate: number, seconds: number, firstSeq: number): Promise<Published> {
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
    const body = JSON.stringify(Array.from({ length: due }, (_, i) => ({ c: channel, d: payload(firstSeq + sent + i) })));
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (!res.ok) throw new Error(`publish answered ${res.status}`);
    await res.arrayBuffer();
    sent += due;
  }
  return { sent, answers: [] };
}

/**
 * The php-fpm shape: WORKERS workers on keep-alive connections, worker k sending its
 * n-th message at start + (n * WORKERS + k) / rate, or as soon as its previous POST is
 * answered when that is later. The send time in the payload is when it actually went.
 * Worker k numbers its messages as lane `lane0 + k`.
 */
async function publishSingles(url: string, channel: string, rate: number, seconds: number, lane0: number): Promise<Published> {
  const agent = new Agent({ keepAlive: true, maxSockets: WORKERS });
  const start = performance.now();
  const answers: number[] = [];
  let sent = 0;
  const worker = async (k: number) => {
    for (let seq = 0; ; seq++) {
      const due = ((seq * WORKERS + k) / rate) * 1000;
      if (due >= seconds * 1000) return;
      const wait = start + due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // pacing the worker to the rate
      const t0 = performance.now();
      await postJson(url, JSON.stringify({ c: channel, d: payload(seq, lane0 + k) }), agent);
      answers.push(performance.now() - t0);
      sent++;
    }
  };
  try {
    await Promise.all(Array.from({ length: WORKERS }, (_, k) => worker(k)));
  } finally {
    agent.destroy();
  }
  return { sent, answers };
}

function postJson(url: string, body: string, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`publish answered ${res.statusCode}`))));
    });
    req.once('error', reject);
    req.end(body);
  });
}
