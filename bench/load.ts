/** Drives subscriber processes (bench/clients/subscribers.ts) and a publisher from the orchestrator. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../test/harness/process.ts';
import type { SubscriberConfig, SubscriberReport } from './clients/subscribers.ts';

export interface SubscriberPool {
  /** Latest report of each process. */
  reports: SubscriberReport[];
  /** Latency samples gathered since the last drain. */
  drainSamples(): number[];
  /** Fewest messages any connection got. */
  min(): number;
  errors(): number;
  closed(): number;
  cpuMs(): number;
  /** Resolves once a report arrives from every process. */
  fresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a load-generator process, bench/clients/<client>, on Node (with tsx) or Bun; its stdout and stderr are piped, stdin too when asked. */
export function spawnGenerator(client: string, env: Record<string, string>, runtime: 'node' | 'bun', stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const script = join(ROOT, 'bench', 'clients', client);
  return spawn(runtime === 'bun' ? join(ROOT, 'node_modules', '.bin', 'bun') : 'node', runtime === 'bun' ? [script] : ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
}

/** Loopback source addresses: 127.0.0.1 … 127.0.0.n. */
export function loopbacks(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 1}`);
}

/**
 * Starts `processes` subscriber processes sharing `count` connections; resolves when all are subscribed.
 * They run on Node (`ws`) unless `runtime` is bun (Bun's native `ws`: far cheaper per message, which
 * matters where the generators, not the server, would set the pace).
 */
export async function startSubscribers(processes: number, config: Omit<SubscriberConfig, 'count'> & { count: number }, runtime: 'node' | 'bun' = 'node'): Promise<SubscriberPool> {
  const children: ChildProcess[] = [];
  const reports: SubscriberReport[] = [];
  let samples: number[] = [];
  const waiters = new Set<() => void>();
  const readies: Promise<void>[] = [];
  for (let p = 0; p < processes; p++) {
    const count = Math.floor(config.count / processes) + (p < config.count % processes ? 1 : 0);
    const child = spawnGenerator('subscribers.ts', { SUBSCRIBERS: JSON.stringify({ ...config, count }) }, runtime);
    children.push(child);
    reports.push({ ready: 0, min: 0, total: 0, errors: 0, samples: [], cpuMs: 0, closed: 0 });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    readies.push(
      new Promise((resolve, reject) => {
        let buffer = '';
        child.once('exit', (code) => reject(new Error(`subscriber process exited (${code}): ${err}`)));
        child.stdout!.on('data', (d) => {
          buffer += d;
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = JSON.parse(buffer.slice(0, nl)) as { ready?: number; report?: SubscriberReport };
            buffer = buffer.slice(nl + 1);
            if (line.ready !== undefined) resolve();
            if (line.report) {
              samples = samples.concat(line.report.samples);
              reports[p] = line.report;
              for (const w of [...waiters]) w();
            }
          }
        });
      }),
    );
  }
  await Promise.all(readies);
  return {
    reports,
    drainSamples() {
      const out = samples;
      samples = [];
      return out;
    },
    min: () => Math.min(...reports.map((r) => r.min)),
    errors: () => reports.reduce((n, r) => n + r.errors, 0),
    closed: () => reports.reduce((n, r) => n + r.closed, 0),
    cpuMs: () => reports.reduce((n, r) => n + r.cpuMs, 0),
    fresh: () =>
      new Promise<void>((resolve) => {
        let pending = processes;
        const w = () => {
          if (--pending === 0) {
            waiters.delete(w);
            resolve();
          }
        };
        waiters.add(w);
      }),
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        ),
      );
    },
  };
}

/** A 100-byte payload carrying its sequence number, send time and, with several publishers, the publisher's lane. */
export function payload(seq: number, lane?: number): string {
  const head = `${seq}|${(performance.timeOrigin + performance.now()).toFixed(3)}|${lane === undefined ? '' : `${lane}|`}`;
  return head + 'x'.repeat(Math.max(0, 100 - head.length));
}

/** POSTs a batch of messages on `channel` starting at sequence `from`. */
export async function publishBatch(url: string, channel: string, from: number, size: number): Promise<void> {
  const body = JSON.stringify(Array.from({ length: size }, (_, i) => ({ c: channel, d: payload(from + i) })));
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (!res.ok) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

/** POSTs one message (a `{"c","d"}` body, as php-fpm workers send them). */
export async function publishSingle(url: string, channel: string, data: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: channel, d: data }) });
  if (!res.ok) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

/** Percentile of a sample (nearest rank). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
