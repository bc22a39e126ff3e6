/** The webhook queues over the store's connections (mesh_webhook, mesh_webhook_backlog). */
import type { SqlDriver } from './driver.ts';
import type { ClaimedBatch, RetryPolicy, WebhookBacklog, WebhookEvent, WebhookQueue, WebhookQueueState } from './webhooks.ts';

// One batch in flight in the whole cluster, always the oldest events: the backend gets them in
// the order they happened, and a batch being retried holds back the ones after it. The lock
// (taken in a statement of its own, so the claim's snapshot comes after it) makes the
// "nothing in flight" check and the claim one step.
const CLAIM_LOCK_SQL = `select pg_advisory_xact_lock(hashtextextended('mesh_webhook:' || $1, 7361842003))`;
const CLAIM_SQL = `
  update mesh_webhook w set claimed_until = now() + $2::interval, claim_token = $4::uuid
  where w.id in (select id from mesh_webhook where target = $3 order by id limit $1::int4)
    and not exists (select 1 from mesh_webhook x where x.target = $3 and x.claimed_until is not null and x.claimed_until > now())
    and (select due_at from mesh_webhook where target = $3 order by id limit 1) <= now()
  returning w.id, w.event::text as event, w.attempts`;

const RETRY_SQL = `
  with expired as (
    delete from mesh_webhook where id = any($1::int8[]) and claim_token = $7::uuid and created_at < now() - $3::interval returning 1
  ), retried as (
    update mesh_webhook set attempts = attempts + 1, last_error = left($2, 500), claimed_until = null, claim_token = null,
      due_at = now() + least($4::interval * power(2, attempts), $5::interval) * $6::float8
    where id = any($1::int8[]) and claim_token = $7::uuid and created_at >= now() - $3::interval
  )
  select count(*)::int8 as expired from expired`;

/** One target's queue over the store's connections. */
export class SqlWebhookQueue implements WebhookQueue {
  constructor(
    readonly db: SqlDriver,
    readonly target: string,
  ) {}

  async claim(limit: number, leaseMs: number): Promise<ClaimedBatch> {
    const lease = crypto.randomUUID();
    const rows = await this.db.transaction(async (tx) => {
      await tx.query(CLAIM_LOCK_SQL, [this.target]);
      return tx.query(CLAIM_SQL, [limit, `${leaseMs} milliseconds`, this.target, lease]);
    });
    const events = rows
      .map((r) => ({ row: Number(r.id), event: JSON.parse(r.event as string) as WebhookEvent, attempts: Number(r.attempts) }))
      .sort((a, b) => a.row - b.row);
    return { lease, events };
  }

  async delivered(rows: readonly number[], lease: string): Promise<void> {
    await this.db.query('delete from mesh_webhook where id = any($1::int8[]) and claim_token = $2::uuid', [rows, lease]);
  }

  async retry(rows: readonly number[], lease: string, error: string, policy: RetryPolicy): Promise<number> {
    // One jitter for the whole batch: its events stay together, and in order, when they are tried again.
    const jitter = 0.8 + Math.random() * 0.4;
    const result = await this.db.query(RETRY_SQL, [rows, error, `${policy.expireMs} milliseconds`, `${policy.firstDelayMs} milliseconds`, `${policy.maxDelayMs} milliseconds`, jitter, lease]);
    return Number(result[0]?.expired ?? 0);
  }

  async backlog(): Promise<WebhookBacklog> {
    // Pending from the triggers' counter (what the bound is checked against); failing events are few, counted.
    const rows = await this.db.query(
      `select coalesce((select pending from mesh_webhook_backlog where target = $1), 0)::int8 as pending,
         (select count(*) from mesh_webhook where target = $1 and attempts > 0)::int8 as failing`,
      [this.target],
    );
    return { pending: Number(rows[0]!.pending), failing: Number(rows[0]!.failing) };
  }

  async state(): Promise<WebhookQueueState> {
    // The first failing event is the one holding the queue back (batches go in order).
    const rows = await this.db.query(
      `select coalesce((select pending from mesh_webhook_backlog where target = $1), 0)::int8 as pending,
         (select count(*) from mesh_webhook where target = $1 and attempts > 0)::int8 as failing,
         (select count(*) from mesh_webhook where target = $1 and claimed_until > now())::int8 as in_flight,
         (select created_at from mesh_webhook where target = $1 order by id limit 1) as oldest_at,
         f.last_error, f.due_at
       from (select 1) one left join lateral (select last_error, due_at from mesh_webhook where target = $1 and attempts > 0 order by id limit 1) f on true`,
      [this.target],
    );
    const r = rows[0]!;
    const iso = (v: unknown) => (v == null ? null : new Date(v as string | Date).toISOString());
    return {
      pending: Number(r.pending),
      failing: Number(r.failing),
      inFlight: Number(r.in_flight),
      lastError: (r.last_error as string | null) ?? null,
      nextRetryAt: iso(r.due_at),
      oldestAt: iso(r.oldest_at),
    };
  }
}
