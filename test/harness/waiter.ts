/** Waiting for "something arrived", with a deadline, instead of sleeping: what the test clients share. */

export interface Waiter {
  /** Wakes everyone waiting (call on every received event). */
  wake(): void;
  /** Resolves once `done()` holds, re-checking on every wake(); rejects with `describe()` after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, describe: () => string): Promise<void>;
}

export function createWaiter(): Waiter {
  const waiters = new Set<() => void>();
  const nextWake = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  return {
    wake() {
      for (const w of [...waiters]) w();
    },
    async until(done, timeoutMs, describe) {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(describe());
        await nextWake(left);
      }
    },
  };
}

/**
 * For a condition only a request can observe (another process's state): asks `probe` every
 * `intervalMs` until it holds, or rejects after `timeoutMs` (saying what `state` reports then). Where an event exists, wait for it instead.
 */
export async function pollUntil(probe: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 25, state?: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${state ? `; state: ${await state()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
