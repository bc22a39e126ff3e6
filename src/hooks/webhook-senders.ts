/**
 * Every webhook queue this instance sends, by target: pgmesh's own
 * (MESH_WEBHOOK_URL) and each Pusher app's that has a webhook URL. The writers
 * (presence, a client event's publish) ask it which targets to write events for
 * and up to what bound; each target's sender runs on its own, so a dead backend
 * holds back only its own queue.
 */
import type { WebhookQueueState, WebhookTargets } from '../store/webhooks.ts';
import type { WebhookSender, WebhookStats } from './webhook-sender.ts';

export class WebhookSenders implements WebhookTargets {
  readonly #senders: ReadonlyMap<string, WebhookSender>;

  constructor(senders: ReadonlyMap<string, WebhookSender>) {
    this.#senders = senders;
  }

  get size(): number {
    return this.#senders.size;
  }

  /** Each target with its bound: what the writers (presence, a Pusher client event's publish) check where they write. */
  bounds(): Record<string, number> {
    const bounds: Record<string, number> = {};
    for (const [target, sender] of this.#senders) bounds[target] = sender.maxBacklog;
    return bounds;
  }

  /** A write produced `produced` events for `target`, of which it queued `written`: those are sent soon, the rest counted dropped. */
  wrote(target: string, produced: number, written: number): void {
    const sender = this.#senders.get(target);
    if (written > 0) sender?.wake();
    if (produced > written) sender?.dropped(produced - written);
  }

  /** Whether `target` has a sender (a Pusher app with a webhook URL): only then are its events written. */
  has(target: string): boolean {
    return this.#senders.has(target);
  }

  /** One target's counts (undefined: it has no sender). */
  stats(target: string): WebhookStats | undefined {
    return this.#senders.get(target)?.stats();
  }

  /** Each target with its URL, its counts on this instance, and its queue as the database has it (cluster-wide). */
  async states(): Promise<{ target: string; url: string; stats: WebhookStats; queue: WebhookQueueState }[]> {
    return Promise.all([...this.#senders].map(async ([target, sender]) => ({ target, url: sender.url, stats: sender.stats(), queue: await sender.state() })));
  }

  /** Each target with its counts. */
  *entries(): Iterable<[string, WebhookStats]> {
    for (const [target, sender] of this.#senders) yield [target, sender.stats()];
  }

  /** Every target's counts added up (for the metrics). */
  total(): WebhookStats {
    const sum: WebhookStats = { pending: 0, failing: 0, sent: 0, failures: 0, expired: 0, dropped: 0 };
    for (const sender of this.#senders.values()) {
      const s = sender.stats();
      for (const key of Object.keys(sum) as (keyof WebhookStats)[]) sum[key] += s[key];
    }
    return sum;
  }

  start(): void {
    for (const sender of this.#senders.values()) sender.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#senders.values()].map((s) => s.stop()));
  }
}
