/**
 * The running totals an instance keeps for its own report (console/sampler.ts):
 * plain numbers the hot paths add to, beside the Prometheus metrics that say
 * the same for a scraper. Latencies are kept per sampling interval, in a
 * bounded window, so a report's p99 is the p99 of that interval only.
 */

/** Latencies of one interval: at most `capacity` kept (a uniform sample of them past that). */
export class LatencyWindow {
  readonly #values: number[] = [];
  #seen = 0;
  constructor(readonly capacity = 2048) {}

  add(ms: number): void {
    this.#seen++;
    if (this.#values.length < this.capacity) {
      this.#values.push(ms);
      return;
    }
    // Reservoir sampling: every value of the interval had the same chance to be kept.
    const slot = Math.floor(Math.random() * this.#seen);
    if (slot < this.capacity) this.#values[slot] = ms;
  }

  /** The interval's count and quantiles (null when nothing happened); starts the next interval. */
  take(): { count: number; p50: number | null; p99: number | null; max: number | null } {
    const count = this.#seen;
    const sorted = this.#values.sort((a, b) => a - b);
    const at = (q: number) => (sorted.length === 0 ? null : round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!));
    const result = { count, p50: at(0.5), p99: at(0.99), max: sorted.length === 0 ? null : round(sorted[sorted.length - 1]!) };
    this.#values.length = 0;
    this.#seen = 0;
    return result;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** Counts by a key (an error code, a limit), as running totals. */
export class KeyedCount {
  readonly #counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
  }
  total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.#counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** What the instance counted since it started, and the latencies of the current interval. */
export class Tally {
  published = 0;
  commits = 0;
  received = 0;
  /** The longest commit-to-arrival lag of a notification this interval (ms); reset by the sampler. */
  lagMs = 0;
  uncaught = 0;
  slowConsumers = 0;
  webhookFailures = 0;
  rpcCalls = 0;
  rpcFailures = 0;
  readonly errors = new KeyedCount();
  readonly limits = new KeyedCount();
  readonly dataRefused = new KeyedCount();
  readonly publishMs = new LatencyWindow();
  readonly webhookMs = new LatencyWindow();
  readonly rpcMs = new LatencyWindow();
}
