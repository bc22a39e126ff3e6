/**
 * Presence and instances as every instance reads them: who is online where, which
 * channels have whom, a channel's members as of a message id, and each instance's
 * reports. Only live instances' connections count (heard from within the dead
 * period). Reads only: SqlCluster adds this instance's writes; the publish thread
 * answers the Pusher HTTP API's queries with one of its own.
 */
import { MeshError } from '../core/errors.ts';
import type { ChannelInfo, ConnectionInfo, InstanceRow, InstanceSampleRow, Page } from './cluster.ts';
import type { Row, SqlDriver } from './driver.ts';

const LIVE = `join mesh_instance i on i.id = c.instance and i.seen_at > now() - $LIVE::interval`;

/** The heartbeat period for MESH_INSTANCE_TTL: several per TTL, so one late beat is not death. */
export function heartbeatMs(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 5));
}

/** Presence reads over a SqlDriver (Postgres or PGlite). */
export class PresenceReader {
  readonly #db: SqlDriver;
  /** Silent this long, an instance is dead: three missed beats, and still reaped within the TTL. */
  protected readonly deadMs: number;

  constructor(db: SqlDriver, ttlMs: number) {
    this.#db = db;
    this.deadMs = heartbeatMs(ttlMs) * 3;
  }

  async instanceUrl(instance: string): Promise<string | null> {
    const rows = await this.#read('select url from mesh_instance i where i.id = $1 and i.seen_at > now() - $LIVE::interval', [instance]);
    return (rows[0]?.url as string | null | undefined) ?? null;
  }

  async #read(text: string, params: unknown[]): Promise<Row[]> {
    try {
      if (!text.includes('$LIVE')) return await this.#db.query(text, params);
      return await this.#db.query(text.replaceAll('$LIVE', `$${params.length + 1}`), [...params, `${this.deadMs} milliseconds`]);
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
}

function page<T>(items: T[], count: number, next: string | null): Page<T> {
  return { items, count, next };
}
