/**
 * Every webhook queue this instance sends, by target: pgmesh's own
 * (MESH_WEBHOOK_URL) and each Pusher app's that has a webhook URL. The cluster
 * asks it which targets to write events for; each target's sender runs on its
 * own, so a dead backend holds back only its own queue.
 */
import type { WebhookMode } from '../store/webhooks.ts';
import type { WebhookSender, WebhookStats } from './webhook-sender.ts';

export class WebhookSenders {
  readonly #senders: ReadonlyMap<string, WebhookSender>;

  constructor(senders: ReadonlyMap<string, WebhookSender>) {
    this.#senders = senders;
  }

  get size(): number {
    return this.#senders.size;
  }

  /** For mesh_cluster_apply(): each target's mode. */
  modes(): Record<string, WebhookMode> {
    const modes: Record<string, WebhookMode> = {};
    for (const [target, sender] of this.#senders) modes[target] = sender.mode();
    return modes;
  }

  /** A write produced `count` events for `target`: sent soon, or counted dropped. */
  produced(target: string, count: number, mode: WebhookMode): void {
    const sender = this.#senders.get(target);
    if (mode === 'send') sender?.wake();
    else sender?.dropped(count);
  }

  /** Whether to write an event for `target` now: it has a sender with room in its backlog (with none, the drop is counted). */
  admit(target: string): boolean {
    const sender = this.#senders.get(target);
    if (sender === undefined) return false;
    if (sender.mode() === 'send') return true;
    sender.dropped(1);
    return false;
  }

  /** One target's counts (undefined: it has no sender). */
  stats(target: string): WebhookStats | undefined {
    return this.#senders.get(target)?.stats();
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
