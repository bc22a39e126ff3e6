/** An allowance that refills at a steady rate up to a burst: what a client may send, per second, in spurts. */
export class TokenBucket {
  #tokens: number;
  #at = 0;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    this.#tokens = burst;
  }

  /** Takes `cost` from the allowance at `nowMs` (a monotonic clock); false, taking nothing, when there is not enough. */
  take(cost: number, nowMs: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((nowMs - this.#at) / 1000) * this.perSecond);
    this.#at = nowMs;
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }
}
