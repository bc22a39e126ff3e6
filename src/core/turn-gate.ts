/**
 * Gives a herd of clients a slice of each turn of the event loop. In a reconnect storm thousands
 * of clients connect, authenticate and subscribe within milliseconds; run as they arrived, their
 * work filled turns of the event loop for a second or more at a time, and what else the instance
 * serves (a server-API publish, a health check, the deliveries) waited behind all of it. Through
 * the gate, client work starts while the turn has used less than its slice; the rest waits, in
 * the order it came, for the turns after, and the event loop polls for I/O in between.
 *
 * A slice of time, not a number of starts: a number small enough to keep the turns short
 * starved a connect storm on an idle machine (a fifth of the rate), and a number large enough
 * for that let the turns grow long on a busy one.
 */

/** How long a turn admits client work: what the server API may wait behind it, per turn. */
export const SLICE_MS = 5;

const NOW: Promise<void> = Promise.resolve();

export class TurnGate {
  readonly #sliceMs: number;
  readonly #clock: () => number;
  /** When this turn's slice began (null: no work admitted since the last turn). */
  #turnStart: number | null = null;
  #waiting: (() => void)[] = [];
  /** Where in #waiting the next to go is (a head index: shift() on thousands is quadratic). */
  #head = 0;
  #turnScheduled = false;

  constructor(sliceMs = SLICE_MS, clock: () => number = () => performance.now()) {
    this.#sliceMs = sliceMs;
    this.#clock = clock;
  }

  /** How many wait for a later turn. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /** Resolves when the caller may start: at once while this turn's slice lasts, else in a later turn, first come first served. */
  pass(): Promise<void> {
    if (this.waiting === 0 && this.#inSlice()) return NOW;
    this.#scheduleTurn();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #inSlice(): boolean {
    const now = this.#clock();
    if (this.#turnStart === null) {
      this.#turnStart = now;
      this.#scheduleTurn();
      return true;
    }
    return now - this.#turnStart < this.#sliceMs;
  }

  #scheduleTurn(): void {
    if (this.#turnScheduled) return;
    this.#turnScheduled = true;
    // A timer, not a microtask: it runs after the event loop has polled for I/O again.
    setTimeout(this.#turn, 0);
  }

  #turn = (): void => {
    this.#turnScheduled = false;
    this.#turnStart = null;
    if (this.waiting > 0) this.#release();
  };

  // One at a time, each after the work released before it has run as far as it runs at once
  // (its continuation was queued first): the slice measures their work, not just the releasing.
  #release = (): void => {
    if (this.waiting === 0) {
      this.#waiting = [];
      this.#head = 0;
      return;
    }
    if (!this.#inSlice()) {
      // A herd that never thins out (a flood of new connections) never empties the queue: what has
      // gone is dropped from its front now and then, or the queue would keep every caller it had.
      if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      this.#scheduleTurn();
      return;
    }
    this.#waiting[this.#head++]!();
    queueMicrotask(this.#release);
  };
}
