/**
 * The last warnings and errors an instance logged, kept for its report: what
 * the console's Problems panel lists as recent errors, beside the counts.
 * A log that tees into it replaces the instance's log; the lines go out as before.
 */
import type { Log, LogFields } from '../log.ts';

export interface RecentProblem {
  at: string;
  level: 'warn' | 'error';
  message: string;
  /** The error's message, when the line carried one (never its stack: this is shown on a web page). */
  error?: string;
}

/** How many are kept: the newest win. */
export const RECENT_KEPT = 20;

export class RecentProblems {
  readonly #entries: RecentProblem[] = [];

  /** The newest first. */
  list(): RecentProblem[] {
    return [...this.#entries].reverse();
  }

  note(level: 'warn' | 'error', message: string, fields: LogFields | undefined): void {
    const err = fields?.err;
    const error = err instanceof Error ? err.message : typeof fields?.error === 'string' ? fields.error : undefined;
    this.#entries.push({ at: new Date().toISOString(), level, message: message.slice(0, 200), ...(error !== undefined && { error: error.slice(0, 300) }) });
    if (this.#entries.length > RECENT_KEPT) this.#entries.shift();
  }

  /** `log`, with its warnings and errors (its children's too) also kept here. */
  tee(log: Log): Log {
    return {
      debug: (message, fields) => log.debug(message, fields),
      info: (message, fields) => log.info(message, fields),
      warn: (message, fields) => {
        this.note('warn', message, fields);
        log.warn(message, fields);
      },
      error: (message, fields) => {
        this.note('error', message, fields);
        log.error(message, fields);
      },
      child: (fields) => this.tee(log.child(fields)),
    };
  }
}
