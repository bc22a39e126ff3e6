/**
 * A bystander (issue 25, item 5): every instance LISTENs on one channel, so each
 * gets every notification of the cluster, whether or not it holds a subscriber
 * of what was published. Here N instances share one Postgres; the others take a
 * steady publish rate (batched POSTs, as an in-order publisher sends them) to
 * channels nobody on the first instance follows, and the first instance's CPU is
 * measured: what one instance pays for the cluster's traffic it does not serve.
 * The same instance's CPU with nothing published is the baseline.
 */
import postgres from 'postgres';
import { payload } from '../load.ts';
import { cpuMs } from '../proc.ts';
import type { RunningSystem } from '../systems.ts';

export interface BystanderResult {
  system: string;
  instances: number;
  publishedPerSec: number;
  /** Publish statements (each one notification to every instance) per second. */
  notificationsPerSec: number;
  /** The bystander's CPU while the others published, in cores, and per 1,000 messages published (ms). */
  bystanderCores: number;
  msPerThousand: number;
  /** The same instance's CPU while nothing was published (heartbeats, presence, its report). */
  idleCores: number;
}

/** Publishes `rate` msg/s through instances[1..] for `seconds` and measures instances[0]. */
export async function bystander(instances: RunningSystem[], databaseUrl: string, rate: number, seconds: number): Promise<BystanderResult> {
  const [watched, ...publishers] = instances as [RunningSystem, ...RunningSystem[]];
  const idle0 = cpuMs(watched.pid);
  const idleStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000)); // the quiet period being measured
  const idleCores = (cpuMs(watched.pid) - idle0) / (performance.now() - idleStart);

  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const statements = async () => Number((await sql`select count(*)::int8 as n from mesh_publish_log`)[0]!.n);
  try {
    const statements0 = await statements();
    const cpu0 = cpuMs(watched.pid);
    const started = performance.now();
    const sent = await Promise.all(publishers.map((p, k) => publishPaced(p.publishUrl, `elsewhere-${k}`, rate / publishers.length, seconds)));
    const wall = (performance.now() - started) / 1000;
    // What was published must have reached the bystander too before its CPU is read: give it a moment to drain.
    await new Promise((resolve) => setTimeout(resolve, 500)); // the tail of the notifications still in flight
    const bystanderCores = (cpuMs(watched.pid) - cpu0) / 1000 / (wall + 0.5);
    const published = sent.reduce((a, b) => a + b, 0);
    const publishedPerSec = published / wall;
    return {
      system: watched.name,
      instances: instances.length,
      publishedPerSec,
      notificationsPerSec: ((await statements()) - statements0) / wall,
      bystanderCores,
      msPerThousand: (bystanderCores * 1000) / (publishedPerSec / 1000),
      idleCores,
    };
  } finally {
    await sql.end();
  }
}

/** One in-order publisher at `rate` msg/s: each round POSTs whatever is due (at most 500) as one batch. */
async function publishPaced(url: string, channel: string, rate: number, seconds: number): Promise<number> {
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= seconds) return sent;
    const due = Math.min(500, Math.floor(elapsed * rate) - sent);
    if (due <= 0) {
      await new Promise((resolve) => setTimeout(resolve, 2)); // pacing the publisher to the rate
      continue;
    }
    const body = JSON.stringify(Array.from({ length: due }, (_, i) => ({ c: channel, d: payload(sent + i) })));
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (!res.ok) throw new Error(`publish answered ${res.status}`);
    await res.arrayBuffer();
    sent += due;
  }
}
