/**
 * Sends one webhook queue to its URL: a batch of up to 100 events per POST, in
 * the target's format (pgmesh's `{"events":[…]}` signed with Pgmesh-Signature,
 * or a Pusher app's). A 2xx answer deletes them; anything else, or no answer
 * within the timeout, puts them back with a growing wait, until they expire.
 * It runs beside everything else and holds nothing anyone waits on: a slow or
 * dead backend delays only its own webhooks.
 */
import type { Log } from '../log.ts';
import type { RetryPolicy, WebhookBacklog, WebhookEvent, WebhookQueue, WebhookQueueState } from '../store/webhooks.ts';
import { SIGNATURE_HEADER, sign } from './signature.ts';
import { callOut } from '../core/outbound.ts';

/** How a batch of events is put on the wire: its body and headers. */
export type WebhookFormat = (events: readonly WebhookEvent[]) => { body: string; headers: Record<string, string> };

/** pgmesh's own format: `{"events":[…]}`, signed with MESH_WEBHOOK_SECRET. */
export function meshWebhookFormat(secret: string): WebhookFormat {
  return (events) => {
    const body = JSON.stringify({ events });
    return { body, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(secret, body) } };
  };
}

export interface WebhookSenderOptions {
  queue: WebhookQueue;
  url: string;
  format: WebhookFormat;
  /** How long a POST may take before it counts as failed. */
  timeoutMs: number;
  retry: RetryPolicy;
  /** Events waiting past which new ones are dropped (and counted) instead of written. */
  maxBacklog: number;
  /** Which events the backend asked for (the rest are taken off the queue unsent); default: all. */
  wanted?: (event: WebhookEvent) => boolean;
  log: Log;
  /** Told of each POST: how long it took and whether the backend took it. */
  onPost?: (seconds: number, ok: boolean) => void;
}

/** What the sender has done since the instance started, and the queue as last seen. */
export interface WebhookStats extends WebhookBacklog {
  sent: number;
  /** POSTs that failed (each is tried again later). */
  failures: number;
  /** Events given up: too old (`expired`) or never written, the backlog being full (`dropped`). */
  expired: number;
  dropped: number;
}

const BATCH = 100;
/** Most bytes of a webhook answer read (its body is not used). */
const ANSWER_BYTES = 64 * 1024;
/** How often the queue is looked at when nothing woke the sender. */
const POLL_MS = 1000;
/** How often the backlog is counted (for the stats; the bound is checked where events are written). */
const BACKLOG_EVERY_MS = 5000;

/** Sends the queue; start() it once the store has started. */
export class WebhookSender {
  readonly #o: WebhookSenderOptions;
  #timer: ReturnType<typeof setInterval> | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #backlogAt = 0;
  #failing = false;
  readonly #abort = new AbortController();
  readonly #stats: WebhookStats = { pending: 0, failing: 0, sent: 0, failures: 0, expired: 0, dropped: 0 };

  constructor(options: WebhookSenderOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer = setInterval(() => this.wake(), POLL_MS);
    this.wake();
  }

  /** The most events its queue may have waiting (MESH_WEBHOOK_BACKLOG): the writers check it. */
  get maxBacklog(): number {
    return this.#o.maxBacklog;
  }

  /** Counts events that were not written because the backlog was full. */
  dropped(count: number): void {
    this.#stats.dropped += count;
  }

  stats(): WebhookStats {
    return { ...this.#stats };
  }

  /** The queue as it is in the database now (cluster-wide), for an operator. */
  state(): Promise<WebhookQueueState> {
    return this.#o.queue.state();
  }

  /** Where its POSTs go. */
  get url(): string {
    return this.#o.url;
  }

  /** Looks at the queue now (new events were written). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      await undefined;
      try {
        do {
          this.#again = false;
          await this.#round();
        } while (this.#again && !this.#stopped);
      } catch (err) {
        this.#o.log.warn('webhook queue unreadable', { err: (err as Error).message });
      } finally {
        this.#running = null;
      }
    })();
  }

  async #round(): Promise<void> {
    if (Date.now() - this.#backlogAt >= BACKLOG_EVERY_MS) {
      Object.assign(this.#stats, await this.#o.queue.backlog());
      this.#backlogAt = Date.now();
    }
    while (!this.#stopped) {
      // The lease outlasts the POST (aborted at its timeout) by a second: a live sender always settles its batch within it.
      const { lease, events } = await this.#o.queue.claim(BATCH, this.#o.timeoutMs + 1000);
      if (events.length === 0) return;
      const rows = events.map((c) => c.row);
      const wanted = this.#o.wanted === undefined ? events.map((c) => c.event) : events.map((c) => c.event).filter(this.#o.wanted);
      // A batch of events nobody asked for is done without a request.
      const failure = wanted.length === 0 ? null : await this.#post(wanted);
      if (failure === null) {
        await this.#o.queue.delivered(rows, lease);
        this.#stats.sent += wanted.length;
        if (this.#failing) this.#o.log.info('webhooks delivered again', { url: this.#o.url });
        this.#failing = false;
        continue;
      }
      this.#stats.failures++;
      const expired = await this.#o.queue.retry(rows, lease, failure, this.#o.retry);
      this.#stats.expired += expired;
      if (expired > 0) this.#o.log.warn('webhook events given up: undelivered past MESH_WEBHOOK_RETRY_FOR', { count: expired });
      if (!this.#failing) this.#o.log.warn('webhook delivery failing; retrying with backoff', { url: this.#o.url, error: failure });
      this.#failing = true;
      // The rest waits for the next round: one failure an interval, not a storm against a dead backend.
      return;
    }
  }

  /** POSTs one batch; null when the backend took it, else why not. */
  async #post(events: readonly WebhookEvent[]): Promise<string | null> {
    const { body, headers } = this.#o.format(events);
    const started = performance.now();
    const failure = await this.#postOnce(body, headers);
    this.#o.onPost?.((performance.now() - started) / 1000, failure === null);
    return failure;
  }

  async #postOnce(body: string, headers: Record<string, string>): Promise<string | null> {
    try {
      // Only the status counts: the answer's body is not kept, so a little of it is read.
      const response = await callOut(
        this.#o.url,
        { method: 'POST', headers, body, signal: AbortSignal.any([AbortSignal.timeout(this.#o.timeoutMs), this.#abort.signal]) },
        ANSWER_BYTES,
      );
      return response.ok ? null : `HTTP ${response.status}`;
    } catch (err) {
      return (err as Error).name === 'TimeoutError' ? `no answer within ${this.#o.timeoutMs} ms` : (err as Error).message;
    }
  }

  /** Stops sending; what is queued stays for the next instance to send. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    // A POST in flight is abandoned: its events go back to the queue, for another instance or the next start.
    this.#abort.abort();
    while (this.#running) await this.#running;
  }
}
