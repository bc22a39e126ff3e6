/**
 * The webhook queues in Postgres (mesh_webhook), one per target: pgmesh's own
 * ('', MESH_WEBHOOK_URL) and each Pusher app's ('pusher:<app id>'). Events are
 * written in the transaction that makes them true (by mesh_cluster_apply(), or
 * by the publish of a Pusher client event); any instance claims the oldest batch
 * of a target for a lease, sends it, and deletes it, or puts it back due
 * later. One batch per target is in flight in the cluster at a time, so each
 * backend gets its events in order and a dead one holds back only its own; a
 * lease that runs out (its instance died mid-send) makes the rows claimable
 * again: delivery is at least once. A claim's lease names it: a sender slower than
 * its lease can neither delete nor release a batch that another claimed since.
 * SqlWebhookQueue (sql-webhook-queue.ts) is the implementation;
 * test/webhook-queue-contract.test.ts is the contract.
 */

/** One event as the backend receives it: pgmesh's carry `id`, `type` and `at`; Pusher's carry `name`. */
export type WebhookEvent = Record<string, unknown>;

/**
 * The webhook targets an instance writes events for, as the writers (presence, a Pusher client
 * event's publish) see them: each target's bound, checked in the statement that writes; and
 * what each write did.
 */
export interface WebhookTargets {
  /** Each target with the most events it may have waiting (MESH_WEBHOOK_BACKLOG); a target not named gets none. */
  bounds(): Readonly<Record<string, number>>;
  /** A write produced `produced` events for `target` and queued `written` of them (the rest were dropped: its backlog was full). */
  wrote(target: string, produced: number, written: number): void;
}

/** pgmesh's own queue (MESH_WEBHOOK_URL). */
export const MESH_TARGET = '';
const PUSHER_TARGET = 'pusher:';
/** A Pusher app's queue. */
export const pusherTarget = (appId: string) => `${PUSHER_TARGET}${appId}`;
/** The Pusher app a target is the queue of, or null (pgmesh's own). */
export const pusherAppOf = (target: string) => (target.startsWith(PUSHER_TARGET) ? target.slice(PUSHER_TARGET.length) : null);

export interface ClaimedWebhook {
  row: number;
  event: WebhookEvent;
  attempts: number;
}

/** A claimed batch: its events, oldest first, and the lease that says who holds them. */
export interface ClaimedBatch {
  /** Names this claim: delivered() and retry() act only on rows still held under it. */
  lease: string;
  events: ClaimedWebhook[];
}

export interface WebhookBacklog {
  /** Events waiting, sent or not yet tried. */
  pending: number;
  /** Of those, events whose sending failed at least once. */
  failing: number;
}

/** A queue as an operator looks at it (the console, GET /v1/mesh/webhooks). */
export interface WebhookQueueState extends WebhookBacklog {
  /** Events held by a sender right now (its POST is under way). */
  inFlight: number;
  /** Why the oldest failing event failed last, and when it is tried again; null while nothing fails. */
  lastError: string | null;
  nextRetryAt: string | null;
  /** When the oldest waiting event was written; null for an empty queue. */
  oldestAt: string | null;
}

export interface RetryPolicy {
  /** The wait after the first failure; it doubles with each one. */
  firstDelayMs: number;
  /** The longest wait between two tries. */
  maxDelayMs: number;
  /** An event this old is given up (deleted, counted) instead of tried again. */
  expireMs: number;
}

export interface WebhookQueue {
  /** Up to `limit` due events, oldest first, held for `leaseMs` under a new lease. */
  claim(limit: number, leaseMs: number): Promise<ClaimedBatch>;
  /** The backend took them: they go (only rows still held under `lease`: after it ran out they may be another's). */
  delivered(rows: readonly number[], lease: string): Promise<void>;
  /** The backend did not take them: due again after a growing wait, or given up when too old (rows still under `lease` only). Resolves with how many were given up. */
  retry(rows: readonly number[], lease: string, error: string, policy: RetryPolicy): Promise<number>;
  backlog(): Promise<WebhookBacklog>;
  /** The queue's state: what waits, what is in flight, what fails and why. */
  state(): Promise<WebhookQueueState>;
}
