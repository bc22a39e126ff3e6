/**
 * Cluster state in Postgres: every instance writes its own connections (in
 * batches, through mesh_cluster_apply()) and heartbeats; every instance reads
 * the same answers. An instance that stops heartbeating is reaped by the first
 * live instance to notice, in one transaction that also emits the leave events,
 * so they happen once.
 */
import { MeshError } from '../core/errors.ts';
import { inTurns } from '../core/in-turns.ts';
import { SAMPLES_KEPT_MS, type ChannelInfo, type Cluster, type ClusterOptions, type ConnectionInfo, type InstanceRow, type InstanceSampleRow, type Page } from './cluster.ts';
import { isDataError, type Row, type SqlDriver } from './driver.ts';
import { PresenceBatch } from './presence-batch.ts';
import { NOTIFY_CHANNEL } from './statements.ts';

const APPLY_SQL = `
  select p.hooks, case when p.n > 0 then
    pg_notify('${NOTIFY_CHANNEL}', '{"from":' || (p.last_id - p.n + 1) || ',"to":' || p.last_id
      || case when octet_length(p.m) <= 7800 then ',"m":' || p.m else '' end || '}') end
  from mesh_cluster_apply($1, $2, $3::interval) p`;

const LIVE = `join mesh_instance i on i.id = c.instance and i.seen_at > now() - $LIVE::interval`;

/** Presence and instances over a SqlDriver (Postgres or PGlite). */
export class SqlCluster implements Cluster {
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
    this.#db = db;
    this.#o = options;
  }

  /** Heartbeat period: several per TTL, so one late beat is not death. */
  get #beatMs(): number {
    return Math.max(100, Math.floor(this.#o.ttlMs / 5));
  }

  /** Silent this long, an instance is dead: three missed beats, and still reaped within the TTL. */
  get #deadMs(): number {
    return this.#beatMs * 3;
  }

  async start(): Promise<void> {
    await this.#heartbeat();
    await this.#apply({ reset: true }, null);
    this.#timer = setInterval(() => void this.#tick(), this.#beatMs);
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
      if (this.#aliveSince !== null && Date.now() - this.#aliveSince >= this.#deadMs) await this.#apply({}, this.#deadMs);
    } catch (err) {
      this.#aliveSince = null;
      if (!this.#closed) this.#o.onError(err);
    }
  }

  async advertise(url: string): Promise<void> {
    this.#url = url;
    await this.#db.query('update mesh_instance set url = $2 where id = $1', [this.#o.instance, url]);
  }

  async instanceUrl(instance: string): Promise<string | null> {
    const rows = await this.#read('select url from mesh_instance i where i.id = $1 and i.seen_at > now() - $LIVE::interval', [instance]);
    return (rows[0]?.url as string | null | undefined) ?? null;
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

  async #read(text: string, params: unknown[]): Promise<Row[]> {
    try {
      if (!text.includes('$LIVE')) return await this.#db.query(text, params);
      return await this.#db.query(text.replaceAll('$LIVE', `$${params.length + 1}`), [...params, `${this.#deadMs} milliseconds`]);
    } catch (err) {
      throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: presence not read', { cause: err });
    }
  }

  async user(uid: string): Promise<ConnectionInfo[]> {
    const rows = await this.#read(
      `select c.id, c.instance, c.transport, c.connected_at, c.address,
         coalesce(array_agg(s.channel order by s.channel) filter (where s.channel is not null), '{}') as channels
       from mesh_connection c ${LIVE}
       left join mesh_subscription s on s.connection = c.id and s.channel not like '$presence:%'
       where c.uid = $1
       group by c.id, c.instance, c.transport, c.connected_at, c.address
       order by c.connected_at, c.id`,
      [uid],
    );
    return rows.map((r) => ({
      id: r.id as string,
      instance: r.instance as string,
      transport: r.transport as string,
      address: (r.address as string | null) ?? null,
      channels: r.channels as string[],
      connectedAt: new Date(r.connected_at as string | Date).toISOString(),
    }));
  }

  async users({ channel, limit, after }: { channel?: string; limit: number; after?: string }): Promise<Page<string>> {
    const from = channel === undefined ? `mesh_connection c ${LIVE}` : `mesh_subscription s join mesh_connection c on c.id = s.connection ${LIVE}`;
    // Users whose uid starts with $ are not pgmesh's (a Pusher app's members): they are listed by their own protocol.
    const where = channel === undefined ? "left(c.uid, 1) <> '$'" : "s.channel = $3 and left(c.uid, 1) <> '$'";
    const params = channel === undefined ? [after ?? '', limit + 1] : [after ?? '', limit + 1, channel];
    const rows = await this.#read(
      `select distinct c.uid from ${from} where ${where} and c.uid > $1 order by c.uid limit $2::int4`,
      params,
    );
    const counted = await this.#read(`select count(distinct c.uid)::int8 as n from ${from} where ${where} and $1::text is not null and $2::int4 > 0`, params);
    const uids = rows.map((r) => r.uid as string);
    return page(uids.slice(0, limit), Number(counted[0]!.n), uids.length > limit ? uids[limit - 1]! : null);
  }

  async channels({ prefix, limit, after }: { prefix?: string; limit: number; after?: string }): Promise<Page<ChannelInfo>> {
    const pattern = `${(prefix ?? '').replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    const params = [pattern, after ?? '', limit + 1];
    const from = `mesh_subscription s join mesh_connection c on c.id = s.connection ${LIVE}`;
    // Reserved channels ($…: a Pusher app's) are listed only when asked for by their prefix; a watch
    // of a channel's joins and leaves ($presence:…) never: it is no channel anyone is in.
    const own = (prefix ?? '').startsWith('$') ? "and s.channel not like '$presence:%'" : "and left(s.channel, 1) <> '$'";
    const rows = await this.#read(
      `select s.channel, count(*)::int8 as subscribers, count(distinct s.uid)::int8 as users
       from ${from} where s.channel like $1 and s.channel > $2 ${own} group by s.channel order by s.channel limit $3::int4`,
      params,
    );
    const counted = await this.#read(`select count(distinct s.channel)::int8 as n from ${from} where s.channel like $1 and $2::text is not null and $3::int4 > 0 ${own}`, params);
    const items = rows.map((r) => ({ channel: r.channel as string, subscribers: Number(r.subscribers), users: Number(r.users) }));
    return page(items.slice(0, limit), Number(counted[0]!.n), items.length > limit ? items[limit - 1]!.channel : null);
  }

  async members(channel: string): Promise<{ uids: string[]; info: Record<string, string | null>; at: number }> {
    // One statement, one snapshot: the member list and the id it is current as of agree. Only live
    // connections count: a dead instance's members are gone from the list before the leave events
    // its reaping sends (a leave for someone not listed changes nothing for a client).
    const rows = await this.#read(
      `select (select last_id from mesh_seq) as at,
         coalesce((select json_agg(json_build_array(m.uid, m.info))::text
           from (select s.uid, max(s.info) as info from mesh_subscription s join mesh_connection c on c.id = s.connection ${LIVE}
                 where s.channel = $1 group by s.uid) m), '[]') as members`,
      [channel],
    );
    const members = JSON.parse(rows[0]!.members as string) as [string, string | null][];
    return { uids: members.map(([uid]) => uid).sort(), info: Object.fromEntries(members), at: Number(rows[0]!.at) };
  }

  async connectionsIn(channel: string): Promise<{ connection: string; info: string | null }[]> {
    const rows = await this.#read(`select s.connection, s.info from mesh_subscription s join mesh_connection c on c.id = s.connection ${LIVE} where s.channel = $1 order by s.connection`, [channel]);
    return rows.map((r) => ({ connection: r.connection as string, info: (r.info as string | null) ?? null }));
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

  async instances(): Promise<InstanceRow[]> {
    const rows = await this.#read(
      `select i.id, i.region, i.started_at, i.seen_at, i.seen_at > now() - $LIVE::interval as live, i.stats::text as stats
       from mesh_instance i order by i.id`,
      [],
    );
    return rows.map((r) => ({
      id: r.id as string,
      region: (r.region as string | null) ?? null,
      startedAt: new Date(r.started_at as string | Date).toISOString(),
      seenAt: new Date(r.seen_at as string | Date).toISOString(),
      live: r.live === true,
      stats: r.stats == null ? null : (JSON.parse(r.stats as string) as unknown),
    }));
  }

  async samples(afterMs: number, step: number): Promise<InstanceSampleRow[]> {
    // Thinned by row number within each instance's series (the counters are running totals, so
    // any subset still gives true averages between its points); the newest is always kept.
    const rows = await this.#read(
      `select instance, (extract(epoch from at) * 1000)::float8 as at, sample::text as sample from (
         select instance, at, sample, row_number() over (partition by instance order by at desc) - 1 as back
         from mesh_instance_sample where at > to_timestamp($1::float8 / 1000)) t
       where back % $2::int4 = 0 order by at, instance`,
      [afterMs, step],
    );
    return rows.map((r) => ({ instance: r.instance as string, at: Number(r.at), sample: JSON.parse(r.sample as string) as unknown }));
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

function page<T>(items: T[], count: number, next: string | null): Page<T> {
  return { items, count, next };
}
