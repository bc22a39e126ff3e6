/**
 * Background loops that fail together — while the database is down, the poll,
 * the cursor flush and the presence heartbeat each fail every second — make
 * three log lines, not thousands: the outage when it starts, a reminder with a
 * count now and then, and the recovery.
 */
import type { Log } from './log.ts';

export class OutageLog {
  #since: number | null = null;
  #failures = 0;
  #lastSaid = 0;

  constructor(
    readonly what: string,
    readonly log: Log,
    readonly reminderMs = 60_000,
  ) {}

  /** A background failure: logged if it starts an outage or a reminder is due, counted otherwise. */
  failed = (err: unknown): void => {
    const now = Date.now();
    this.#failures++;
    if (this.#since === null) {
      this.#since = now;
      this.#lastSaid = now;
      this.log.error(`${this.what} failing`, { err });
    } else if (now - this.#lastSaid >= this.reminderMs) {
      this.#lastSaid = now;
      this.log.error(`${this.what} still failing after ${seconds(now - this.#since)} (${this.#failures} failures)`, { last: err instanceof Error ? err.message : String(err) });
    }
  };

  /** Background work reached the database: an outage in progress is over. */
  healthy = (): void => {
    if (this.#since === null) return;
    this.log.warn(`${this.what} back after ${seconds(Date.now() - this.#since)} (${this.#failures} failures)`);
    this.#since = null;
    this.#failures = 0;
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
