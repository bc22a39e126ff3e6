/**
 * The instance's side of its publish thread: starts it, counts what it did in
 * the instance's metrics, starts it again should it ever end on its own, and
 * stops it last at shutdown (publishes go on through a drain).
 */
import { finishedWithin } from '../core/deadline.ts';
import type { Log } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { RuntimeAdapter, Thread } from '../runtime/adapter.ts';
import type { FromPublishThread, PublishTally } from './messages.ts';
import type { PublishThreadData } from './thread.ts';

const ENTRY = new URL('./thread.ts', import.meta.url);
/** How long a stopping thread may take to finish its requests and close its connection. */
const STOP_TIMEOUT_MS = 5000;
const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 30_000;

/** A running publish thread. */
export class PublishThread {
  #thread: Thread;
  #port: number;
  #stopping = false;
  #restartMs = RESTART_FIRST_MS;
  #restarts = 0;

  private constructor(
    thread: Thread,
    port: number,
    private readonly runtime: RuntimeAdapter,
    private readonly data: PublishThreadData,
    private readonly metrics: Metrics,
    private readonly log: Log,
  ) {
    this.#thread = thread;
    this.#port = port;
    this.#watch();
  }

  /** Starts the thread; resolves once it listens (rejects when it cannot: the port taken, the database unreachable). */
  static async start(runtime: RuntimeAdapter, data: PublishThreadData, metrics: Metrics, log: Log): Promise<PublishThread> {
    const { thread, port } = await launch(runtime, data, metrics);
    return new PublishThread(thread, port, runtime, data, metrics, log);
  }

  /** The port it serves (the one bound when MESH_PUBLISH_PORT was 0). */
  get port(): number {
    return this.#port;
  }

  /** How many times it was started again after ending on its own. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Ends the thread as a crash would (tests check that it comes back). */
  kill(): Promise<void> {
    return this.#thread.terminate();
  }

  /** Lets requests in progress finish, closes its port and connection, ends it. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const thread = this.#thread;
    const stopped = new Promise<void>((resolve) => {
      thread.onMessage((m) => (m as FromPublishThread).type === 'stopped' && resolve());
      thread.onExit(() => resolve());
    });
    thread.post({ type: 'stop' });
    await finishedWithin(stopped, STOP_TIMEOUT_MS);
    await thread.terminate();
  }

  #watch(): void {
    this.#thread.onExit((code) => {
      if (this.#stopping) return;
      this.log.error('the publish thread ended: starting it again', { code, port: this.#port, inMs: this.#restartMs });
      setTimeout(() => void this.#restart(), this.#restartMs);
    });
  }

  async #restart(): Promise<void> {
    if (this.#stopping) return;
    try {
      // The port it had: a balancer or an app may have been told it.
      const { thread, port } = await launch(this.runtime, { ...this.data, port: this.#port }, this.metrics);
      if (this.#stopping) {
        await thread.terminate();
        return;
      }
      this.#thread = thread;
      this.#port = port;
      this.#restarts++;
      this.#restartMs = RESTART_FIRST_MS;
      this.log.warn('publish thread back', { port });
      this.#watch();
    } catch (err) {
      this.#restartMs = Math.min(RESTART_MAX_MS, this.#restartMs * 2);
      this.log.error('the publish thread did not start again: trying later', { err, inMs: this.#restartMs });
      setTimeout(() => void this.#restart(), this.#restartMs);
    }
  }
}

/** Starts one thread and waits for it to listen or fail; its tallies go to `metrics` from then on. */
function launch(runtime: RuntimeAdapter, data: PublishThreadData, metrics: Metrics): Promise<{ thread: Thread; port: number }> {
  const thread = runtime.startThread(ENTRY, data);
  return new Promise((resolve, reject) => {
    thread.onMessage((m) => {
      const message = m as FromPublishThread;
      if (message.type === 'listening') resolve({ thread, port: message.port });
      else if (message.type === 'failed') {
        reject(new Error(`publish thread: ${message.message}`));
        void thread.terminate();
      } else if (message.type === 'tally') count(metrics, message.tally);
    });
    thread.onExit((code) => reject(new Error(`publish thread ended while starting (exit code ${code})`)));
  });
}

function count(metrics: Metrics, tally: PublishTally): void {
  for (const [n, seconds] of tally.published) metrics.store.published(n, seconds);
  for (const size of tally.committed) metrics.store.committed(size);
  for (let i = 0; i < tally.refused; i++) metrics.store.refused();
  for (const [code, n] of Object.entries(tally.errors)) for (let i = 0; i < n; i++) metrics.errorReported(code);
  for (const kind of tally.uncaught) metrics.uncaught(kind);
}
