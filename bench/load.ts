/** Drives subscriber processes (bench/clients/subscribers.ts) and a publisher from the orchestrator. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../test/harness/process.ts';
import type { SubscriberConfig, SubscriberReport } from './clients/subscribers.ts';
import { spawnNative, tokensFile } from './native.ts';

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

/** Load-generator processes that print {"ready":n} once ready, then {"report":...} lines. */
export interface ReportingProcesses<R> {
  /** The latest report of each process. */
  reports: R[];
  /** Resolves once as many reports arrived as there are processes (a fresh one from each, as they report at one pace). */
  fresh(): Promise<void>;
  /** Kills them all. */
  stop(): Promise<void>;
}

/**
 * Starts `processes` generators (`spawnOne(p)`), each report also handed to `onReport`; resolves when every
 * one said it is ready, and rejects (having stopped them all) if one exits first.
 */
export async function startReporting<R>(processes: number, spawnOne: (p: number) => ChildProcess, initial: R | undefined, onReport: (report: R) => void): Promise<ReportingProcesses<R>> {
  const children: ChildProcess[] = [];
  const reports: R[] = [];
  const waiters = new Set<() => void>();
  const readies: Promise<void>[] = [];
  for (let p = 0; p < processes; p++) {
    const child = spawnOne(p);
    children.push(child);
    if (initial !== undefined) reports.push(initial);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    readies.push(
      new Promise((resolve, reject) => {
        let buffer = '';
        child.once('exit', (code) => reject(new Error(`load generator exited (${code}): ${err}`)));
        child.stdout!.on('data', (d) => {
          buffer += d;
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = JSON.parse(buffer.slice(0, nl)) as { ready?: number; report?: R };
            buffer = buffer.slice(nl + 1);
            if (line.ready !== undefined) resolve();
            if (line.report) {
              reports[p] = line.report;
              onReport(line.report);
              for (const w of [...waiters]) w();
            }
          }
        });
      }),
    );
  }
  const running: ReportingProcesses<R> = {
    reports,
    fresh: () =>
      new Promise<void>((resolve) => {
        let pending = processes;
        const w = () => {
          if (--pending > 0) return;
          waiters.delete(w);
          resolve();
        };
        waiters.add(w);
      }),
    stop: async () => {
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
  try {
    await Promise.all(readies);
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}

/**
 * Starts `processes` subscriber processes sharing `count` connections; resolves when all are subscribed.
 * They run on Node (`ws`) unless `runtime` is bun (Bun's native `ws`: far cheaper per message, which
 * matters where the generators, not the server, would set the pace) or native (bench/clients/wsclients.c,
 * cheaper still: pgmesh's protocol only, and with `users` every connection a user of its own across processes).
 */
export async function startSubscribers(processes: number, config: Omit<SubscriberConfig, 'count'> & { count: number }, runtime: 'node' | 'bun' | 'native' = 'node'): Promise<SubscriberPool> {
  let samples: number[] = [];
  const share = (p: number) => Math.floor(config.count / processes) + (p < config.count % processes ? 1 : 0);
  const tokens: (string | undefined)[] = [];
  if (runtime === 'native') {
    if (config.protocol !== 'pgmesh') throw new Error('the native generator speaks only pgmesh over WebSocket');
    for (let p = 0, from = 0; p < processes; from += share(p), p++) {
      tokens[p] = config.users === undefined ? undefined : await tokensFile(`${config.users.prefix}${p}`, config.users.secret, config.users.prefix, from, share(p));
    }
  }
  const running = await startReporting<SubscriberReport>(
    processes,
    (p) => {
      const count = share(p);
      if (runtime !== 'native') return spawnGenerator('subscribers.ts', { SUBSCRIBERS: JSON.stringify({ ...config, count }) }, runtime);
      const { url, channel, localAddresses, concurrency, sampleEvery, lanes } = config;
      return spawnNative({ mode: 'hold', url, count, channel, tokens: tokens[p], localAddresses, concurrency, sampleEvery, lanes });
    },
    { ready: 0, min: 0, total: 0, errors: 0, samples: [], cpuMs: 0, closed: 0 },
    (report) => (samples = samples.concat(report.samples)),
  );
  const { reports } = running;
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
    fresh: running.fresh,
    stop: running.stop,
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
