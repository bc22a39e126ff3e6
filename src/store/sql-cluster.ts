/**
 * Cluster state in Postgres: every instance writes its own connections (in
 * batches, through mesh_cluster_apply()) and heartbeats; every instance reads
 * the same answers. An instance that stops heartbeating is reaped by the first
 * live instance to notice, in one transaction that also emits the leave events,
 * so they happen once.
 */
import { inTurns } from '../core/in-turns.ts';
import { SAMPLES_KEPT_MS, type Cluster, type ClusterOptions } from './cluster.ts';
import { isDataError, type SqlDriver } from './driver.ts';
import { heartbeatMs, PresenceReader } from './presence-reader.ts';
import { PresenceBatch } from './presence-batch.ts';
import { NOTIFY_CHANNEL } from './statements.ts';

const APPLY_SQL = `
  select p.hooks, case when p.n > 0 then
    pg_notify('${NOTIFY_CHANNEL}', '{"from":' || (p.last_id - p.n + 1) || ',"to":' || p.last_id
      || case when octet_length(p.m) <= 7800 then ',"m":' || p.m else '' end || '}') end
  from mesh_cluster_apply($1, $2, $3::interval) p`;

/** Presence and instances over a SqlDriver (Postgres or PGlite): this instance's writes, and everyone's reads (PresenceReader). */
export class SqlCluster extends PresenceReader implements Cluster {
  readonly #db: SqlDriver;
  readonly #o: ClusterOptions;
  readonly #batch = new PresenceBatch();
  #flushing: Promise<void> | null = null;
  /** The flush applying now (or done): the next one starts after it. */
  #applying: Promise<void> = Promise.resolve();
  #again = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** Since when every heartbeat succeeded (null: the last one failed). */
  #aliveSince: number | null = null;
  #url: string | null = null;
  #closed = false;
  #reports = 0;
  /** Changes told so far, and how many of the first of them are written: settled() waits for the one to reach the other. */
  #told = 0;
  #written = 0;
  #settling: { upTo: number; resolve: () => void }[] = [];

  constructor(db: SqlDriver, options: ClusterOptions) {
    super(db, options.ttlMs);
    this.#db = db;
    this.#o = options;
  }

  async start(): Promise<void> {
    await this.#heartbeat();
    await this.#apply({ reset: true }, null);
    this.#timer = setInterval(() => void this.#tick(), heartbeatMs(this.#o.ttlMs));
  }

  connected(id: string, uid: string, transport: string, connectedAt: number, address?: string): void {
    this.#batch.connected(id, { uid, transport, connectedAt, ...(address !== undefined && { address }) });
    this.#told++;
    this.#schedule();
  }

  subscribed(id: string, uid: string, channels: readonly string[], info?: string): void {
    this.#batch.subscribed(id, uid, channels, info);
    this.#told++;
    this.#schedule();
  }

  unsubscribed(id: string, uid: string, channels: readonly string[]): void {
    this.#batch.unsubscribed(id, uid, channels);
    this.#told++;
    this.#schedule();
  }

  disconnected(id: string, reason: string): void {
    this.#batch.disconnected(id, reason);
    this.#told++;
    this.#schedule();
  }

  // Like group commit: the first change flushes at once, changes made meanwhile go in the next flush.
  #schedule(): void {
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = (async () => {
      await undefined;
      try {
        do {
          this.#again = false;
          await this.#flushOnce();
        } while (this.#again && !this.#batch.empty);
      } catch (err) {
        if (!this.#closed) this.#o.onError(err);
      } finally {
        this.#flushing = null;
      }
    })();
  }

  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    await this.#flushOnce();
  }

  settled(): Promise<void> {
    if (this.#written >= this.#told) return Promise.resolve();
    return new Promise((resolve) => this.#settling.push({ upTo: this.#told, resolve }));
  }

  // One apply at a time, whoever asks (a scheduled flush, the heartbeat's, flush()): two on different
  // connections can take the cluster lock in either order, and a close applied before its connect
  // left the connection's row behind for good (seen by the race harness).
  #flushOnce(): Promise<void> {
    const run = this.#applying.then(() => this.#flushNow());
    this.#applying = run.catch(() => {});
    return run;
  }

  async #flushNow(): Promise<void> {
    if (this.#closed) return;
    const upTo = this.#told;
    if (this.#batch.empty) return this.#wrote(upTo);
    const taken = this.#batch.take();
    try {
      await this.#apply(taken.toJSON(), null);
    } catch (err) {
      if (isDataError(err)) {
        await this.#applyApart(taken);
        return this.#wrote(upTo);
      }
      // Kept, not lost: it goes with the next flush (the heartbeat retries).
      this.#batch.restore(taken);
      throw err;
    }
    this.#wrote(upTo);
  }

  /** The first `upTo` changes are written: whoever waits for no more than that goes on. */
  #wrote(upTo: number): void {
    if (upTo <= this.#written) return;
    this.#written = upTo;
    const due: (() => void)[] = [];
    const still = [];
    for (const waiter of this.#settling) {
      if (waiter.upTo <= upTo) due.push(waiter.resolve);
      else still.push(waiter);
    }
    this.#settling = still;
    // In a reconnect storm one flush releases thousands (each then replies, replays and goes live): all at
    // once they held an instance's event loop for most of a second, and the publishes beside them waited.
    inTurns(due);
  }

  // One connection's refused changes must not stop everyone's (retried forever, they would): each is written alone, and what is refused is dropped.
  async #applyApart(taken: PresenceBatch): Promise<void> {
    const parts = taken.perConnection();
    for (const [i, part] of parts.entries()) {
      try {
        await this.#apply(part.toJSON(), null);
      } catch (err) {
        if (isDataError(err)) {
          this.#o.onRefused?.(err);
          continue;
        }
        for (const rest of parts.slice(i)) this.#batch.restore(rest);
        throw err;
      }
    }
  }

  async #apply(batch: object, reapAfterMs: number | null): Promise<void> {
    const targets = this.#o.hooks?.bounds();
    const rows = await this.#db.query(APPLY_SQL, [JSON.stringify(targets === undefined ? batch : { ...batch, targets }), this.#o.instance, reapAfterMs === null ? null : `${reapAfterMs} milliseconds`]);
    if (targets === undefined || rows[0]?.hooks == null) return;
    for (const [target, [produced, written]] of Object.entries(JSON.parse(rows[0].hooks as string) as Record<string, [number, number]>)) {
      if (produced > 0) this.#o.hooks?.wrote(target, produced, written);
    }
  }

  async #tick(): Promise<void> {
    try {
      await this.#heartbeat();
      this.#o.onHealthy?.();
      await this.#flushOnce();
      // Reap others only after being alive for a whole dead-period ourselves: after an outage
      // everyone's heartbeat is stale, and the first one back must not take the rest for dead.
      if (this.#aliveSince !== null && Date.now() - this.#aliveSince >= this.deadMs) await this.#apply({}, this.deadMs);
    } catch (err) {
      this.#aliveSince = null;
      if (!this.#closed) this.#o.onError(err);
    }
  }

  async advertise(url: string): Promise<void> {
    this.#url = url;
    await this.#db.query('update mesh_instance set url = $2 where id = $1', [this.#o.instance, url]);
  }

  async #heartbeat(): Promise<void> {
    const rows = await this.#db.query(
      `insert into mesh_instance (id, region, url) values ($1, $2, $3)
       on conflict (id) do update set seen_at = now(), url = coalesce(excluded.url, mesh_instance.url) returning (xmax = 0) as created`,
      [this.#o.instance, this.#o.region ?? null, this.#url],
    );
    const recreated = rows[0]?.created === true && this.#aliveSince !== null;
    this.#aliveSince ??= Date.now();
    if (recreated) {
      // Another instance took us for dead and removed our rows: write every local connection again.
      this.#o.onError(new Error('this instance was taken for dead (a stall longer than the TTL?): writing its connections again'));
      for (const c of this.#o.local()) {
        this.#batch.connected(c.id, { uid: c.uid, transport: c.transport, connectedAt: c.connectedAt, ...(c.address !== undefined && { address: c.address }) });
        this.#batch.subscribed(c.id, c.uid, c.channels);
        for (const [channel, info] of c.said ?? []) this.#batch.subscribed(c.id, c.uid, [channel], info);
      }
    }
  }

  async report(stats: object, sample: object): Promise<void> {
    // One round trip: the report, the sample, and this instance's samples past keeping. Once a
    // minute the old samples of every instance go too (those of instances long gone included).
    const everyone = ++this.#reports % 60 === 0;
    await this.#db.query(
      `with r as (update mesh_instance set stats = $2::text::jsonb where id = $1),
         s as (insert into mesh_instance_sample (instance, at, sample) values ($1, now(), $3::text::jsonb) on conflict do nothing)
       delete from mesh_instance_sample where ($5 or instance = $1) and at < now() - $4::interval`,
      [this.#o.instance, JSON.stringify(stats), JSON.stringify(sample), `${SAMPLES_KEPT_MS} milliseconds`, everyone],
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    while (this.#flushing) await this.#flushing;
    // Our rows go, and with them the leave events of every user who was only here: after the apply in
    // flight, and with none after it (a heartbeat's flush would write rows no one reaps).
    const retire = this.#applying.then(() => this.#apply({ retire: true }, null));
    this.#applying = retire.catch(() => {});
    await retire.catch((err) => this.#o.onError(new Error('presence rows not removed at shutdown: other instances reap them after the TTL', { cause: err })));
    // Nothing more will be written: nobody waits for it.
    this.#wrote(Number.POSITIVE_INFINITY);
  }
}
