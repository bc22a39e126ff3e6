/**
 * The Store over any SqlDriver: the outbox, group-committed publishes with
 * gap-free ids, the NOTIFY backplane feeding the ordered Feed, batched cursor
 * writes, and the retention janitor. All of pgmesh's SQL lives in this folder.
 */
import { MeshError } from '../core/errors.ts';
import { Message } from '../core/message.ts';
import type { FeedListener, NewMessage, Store } from './store.ts';
import type { Row, SqlDriver, SqlQuery } from './driver.ts';
import { Feed } from './feed.ts';
import { GroupCommit } from './group-commit.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

export const NOTIFY_CHANNEL = 'pgmesh';
// NOTIFY payloads must stay under 8000 bytes; leave room for the id range around the bodies.
const INLINE_LIMIT = 7800;
const PAGE = 1000;
const MIGRATION_LOCK = 7_361_842_001;

// One statement, one round trip: take ids from the counter (which serialises
// publishers until commit), insert the batch, notify. The notification carries
// the batch itself when $3 says it fits, otherwise only its id range.
const PUBLISH_SQL = `
  with batch as (
    select ord, e->>0 as channel, e->>1 as data, e->>2 as sender
    from json_array_elements($1::text::json) with ordinality as t(e, ord)
  ), seq as (
    update mesh_seq set last_id = last_id + $2::int8 returning last_id
  ), stored as (
    insert into mesh_message (id, channel, data, sender)
    select seq.last_id - $2::int8 + batch.ord, batch.channel, batch.data, batch.sender from batch, seq
  )
  select seq.last_id as last_id,
    pg_notify('${NOTIFY_CHANNEL}', '{"from":' || (seq.last_id - $2::int8 + 1) || ',"to":' || seq.last_id
      || coalesce(',"m":' || case when $3::boolean then $1::text end, '') || '}')
  from seq`;

const CURSOR_UPSERT_SQL = `
  insert into mesh_cursor (uid, channel, last_id)
  select e->>0, e->>1, (e->>2)::int8 from json_array_elements($1::text::json) as e
  on conflict (uid, channel) do update
    set last_id = greatest(mesh_cursor.last_id, excluded.last_id), updated_at = now()`;

export interface SqlStoreOptions {
  /** How long messages are kept, in milliseconds. */
  retentionMs: number;
  /** How often pending cursor moves are written. */
  cursorFlushMs?: number;
  onError?: (err: unknown) => void;
}

interface Notification {
  from: number;
  to: number;
  m?: [string, string, string | null][];
}

const encoder = new TextEncoder();

interface CursorMove {
  uid: string;
  channel: string;
  id: number;
}

/** The outbox store on Postgres or PGlite. */
export class SqlStore implements Store {
  readonly kind: 'postgres' | 'pglite';
  readonly #db: SqlDriver;
  readonly #options: SqlStoreOptions;
  readonly #feed: Feed;
  readonly #commits: GroupCommit<NewMessage>;
  #cursors = new Map<string, CursorMove>();
  #flushing = new Map<string, CursorMove>();
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(db: SqlDriver, options: SqlStoreOptions) {
    this.kind = db.kind;
    this.#db = db;
    this.#options = options;
    const onError = options.onError ?? ((err) => console.error('pgmesh store:', err));
    this.#feed = new Feed((after, upTo) => this.#readRange(after, upTo), onError);
    this.#commits = new GroupCommit<NewMessage>({
      commit: (items) => this.#commit(items),
      maxItems: 1000,
      maxBytes: 4 * 1024 * 1024,
      size: (m) => m.data.length + m.channel.length + 16,
    });
  }

  async start(): Promise<void> {
    await this.#migrate();
    this.#feed.startAt(await this.#head());
    await this.#db.listen(NOTIFY_CHANNEL, (payload) => this.#onNotify(payload), () => {
      // On every (re)connect: read what was committed while we were not listening.
      void this.#head().then((head) => this.#feed.catchUp(head)).catch(() => {});
    });
    const flushEvery = this.#options.cursorFlushMs ?? 1000;
    this.#timers.push(setInterval(() => void this.flushCursors().catch(() => {}), flushEvery));
    this.#timers.push(setInterval(() => void this.expire().catch(() => {}), 60_000));
  }

  onMessages(listener: FeedListener): void {
    this.#feed.onMessages(listener);
  }

  publish(messages: readonly NewMessage[]): Promise<number[]> {
    return this.#commits.add(messages);
  }

  async #commit(items: NewMessage[]): Promise<number[]> {
    const bodies = JSON.stringify(items.map((m) => [m.channel, m.data, m.sender]));
    const inline = bodies.length <= INLINE_LIMIT && encoder.encode(bodies).length <= INLINE_LIMIT;
    let rows: Row[];
    try {
      rows = await this.#db.query(PUBLISH_SQL, [bodies, items.length, inline]);
    } catch (err) {
      throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: publish not committed', { cause: err });
    }
    const to = Number(rows[0]!.last_id);
    const from = to - items.length + 1;
    // Hand our own batch to the feed now rather than waiting for its NOTIFY to come back.
    this.#feed.offer(from, to, items.map((m, i) => new Message(from + i, m.channel, m.data, m.sender)), true);
    return items.map((_, i) => from + i);
  }

  #onNotify(payload: string): void {
    let n: Notification;
    try {
      n = JSON.parse(payload) as Notification;
    } catch {
      return; // not ours
    }
    if (typeof n.from !== 'number' || typeof n.to !== 'number') return;
    const messages = n.m ? n.m.map(([channel, data, sender], i) => new Message(n.from + i, channel, data, sender)) : null;
    this.#feed.offer(n.from, n.to, messages, false);
  }

  async #readRange(afterId: number, upTo: number): Promise<Message[]> {
    const rows = await this.#db.query(
      'select id, channel, data, sender from mesh_message where id > $1::int8 and id <= $2::int8 order by id limit $3::int4',
      [afterId, upTo, PAGE],
    );
    return rows.map(toMessage);
  }

  async history(channel: string, afterId: number, limit: number): Promise<Message[]> {
    try {
      const rows = await this.#db.query(
        'select id, channel, data, sender from mesh_message where channel = $1 and id > $2::int8 order by id limit $3::int4',
        [channel, afterId, limit],
      );
      return rows.map(toMessage);
    } catch (err) {
      throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: history not read', { cause: err });
    }
  }

  async cursor(uid: string, channel: string): Promise<number | null> {
    const key = cursorKey(uid, channel);
    // A move not yet written (or being written) is newer than the row.
    const unwritten = Math.max(this.#cursors.get(key)?.id ?? 0, this.#flushing.get(key)?.id ?? 0);
    let rows: Row[];
    try {
      rows = await this.#db.query('select last_id from mesh_cursor where uid = $1 and channel = $2', [uid, channel]);
    } catch (err) {
      throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: cursor not read', { cause: err });
    }
    const stored = rows.length > 0 ? Number(rows[0]!.last_id) : null;
    return unwritten > 0 ? Math.max(stored ?? 0, unwritten) : stored;
  }

  advanceCursor(uid: string, channel: string, id: number): void {
    const key = cursorKey(uid, channel);
    const pending = this.#cursors.get(key);
    if (pending === undefined) this.#cursors.set(key, { uid, channel, id });
    else if (id > pending.id) pending.id = id;
  }

  async flushCursors(): Promise<void> {
    if (this.#cursors.size === 0) return;
    const batch = this.#cursors;
    this.#cursors = new Map();
    for (const [key, c] of batch) this.#flushing.set(key, c);
    try {
      await this.#db.query(CURSOR_UPSERT_SQL, [JSON.stringify([...batch.values()].map((c) => [c.uid, c.channel, c.id]))]);
    } catch (err) {
      // Put them back (a newer move wins) so the next flush retries.
      for (const c of batch.values()) this.advanceCursor(c.uid, c.channel, c.id);
      throw err;
    } finally {
      for (const [key, c] of batch) if (this.#flushing.get(key) === c) this.#flushing.delete(key);
    }
  }

  /** Deletes expired messages in bounded batches; returns how many went. */
  async expire(): Promise<number> {
    const cutoff = new Date(Date.now() - this.#options.retentionMs).toISOString();
    let total = 0;
    for (;;) {
      const rows = await this.#db.query(
        `with gone as (
           delete from mesh_message where id in (
             select id from mesh_message where created_at < $1::timestamptz order by created_at limit 5000)
           returning 1)
         select count(*)::int4 as n from gone`,
        [cutoff],
      );
      const n = Number(rows[0]!.n);
      total += n;
      if (n < 5000) return total;
    }
  }

  async ping(): Promise<void> {
    await this.#db.query('select 1');
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#feed.stop();
    await this.flushCursors().catch(() => {});
    await this.#db.close();
  }

  async #head(): Promise<number> {
    const rows = await this.#db.query('select last_id from mesh_seq');
    return Number(rows[0]!.last_id);
  }

  // Several instances may start at once on an empty database: the advisory
  // lock lets one migrate while the others wait, then find nothing to do.
  async #migrate(): Promise<void> {
    await this.#db.transaction(async (tx: SqlQuery) => {
      await tx.query(`select pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      await tx.query('create table if not exists mesh_schema (version int4 not null)');
      const rows = await tx.query('select max(version) as version from mesh_schema');
      const current = rows[0]?.version == null ? 0 : Number(rows[0].version);
      if (current > SCHEMA_VERSION) {
        throw new Error(`database schema is version ${current}, newer than this pgmesh knows (${SCHEMA_VERSION}): upgrade pgmesh`);
      }
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue;
        await tx.exec(m.sql);
        await tx.query('insert into mesh_schema (version) values ($1::int4)', [m.version]);
      }
    });
  }
}

function toMessage(row: Row): Message {
  return new Message(Number(row.id), row.channel as string, row.data as string, (row.sender as string | null) ?? null);
}

function cursorKey(uid: string, channel: string): string {
  return `${uid}\u0000${channel}`;
}
