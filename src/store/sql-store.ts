/**
 * The Store over any SqlDriver: the outbox, group-committed publishes with
 * gap-free ids, the NOTIFY backplane feeding the ordered Feed, batched cursor
 * writes, and the retention janitor. All of pgmesh's SQL lives in this folder.
 */
import { MeshError } from '../core/errors.ts';
import { Message } from '../core/message.ts';
import type { FeedListener, NewMessage, Store, StoreObserver } from './store.ts';
import { isDataError, type Row, type SqlDriver, type SqlQuery } from './driver.ts';
import { Feed } from './feed.ts';
import { CursorBatch } from './cursor-batch.ts';
import { SqlPublisher } from './publisher.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';
import type { WebhookTargets } from './webhooks.ts';
import { CURSOR_BATCH_SQL, CURSOR_UPSERT_SQL, HISTORY_BATCH_SQL, MERCURE_EVENT_SQL, MESSAGE_COLUMNS, NOTIFY_CHANNEL, PAGE, SEQUENCE_INBOX_SQL } from './statements.ts';
import { ReadBatch } from './read-batch.ts';

const MIGRATION_LOCK = 7_361_842_001;

export interface SqlStoreOptions {
  /** How long messages are kept, in milliseconds. */
  retentionMs: number;
  /** How often the table is polled while the LISTEN connection is down. */
  pollMs?: number;
  /** Messages waiting for a commit past which publishes are refused (ERR_UNAVAILABLE), not queued. */
  maxQueued?: number;
  /** Group concurrent publishes into shared statements (default); off only to measure what it buys. */
  groupCommit?: boolean;
  /** How often pending cursor moves are written. */
  cursorFlushMs?: number;
  /** Background work reached the database (ends an outage that onError reported). */
  onHealthy?: () => void;
  /** MESH_MAX_MESSAGE, written where SQL's mesh_publish() reads it. */
  maxMessage?: number;
  /** How long to keep asking whether a publish whose answer was lost committed. */
  resolveBudgetMs?: number;
  onError?: (err: unknown) => void;
  /** Told of publishes, commits, notifications and cursor writes (metrics). */
  observer?: StoreObserver;
  /** The webhook targets a message's hook may be written for, with their bounds (without it: any, unbounded). */
  hooks?: WebhookTargets;
}

interface Notification {
  from?: number;
  to?: number;
  m?: [string, string, string | null, string[] | null][];
  /** mesh_publish() wrote to the inbox. */
  inbox?: 1;
  /** When it committed, in ms since the epoch by the database's clock. */
  at?: number;
}

/** The outbox store on Postgres or PGlite. */
export class SqlStore implements Store {
  readonly kind: 'postgres' | 'pglite';
  readonly #db: SqlDriver;
  readonly #options: SqlStoreOptions;
  readonly #feed: Feed;
  readonly #publisher: SqlPublisher;
  readonly #cursors = new CursorBatch();
  // A storm's clients each read a cursor and a history page: together, a statement for many (read-batch.ts).
  readonly #historyReads = new ReadBatch<HistoryRead, Message[]>({ load: (reads) => this.#loadHistories(reads), maxKeys: 100, maxInFlight: 2, isKeyFault: isDataError });
  readonly #cursorReads = new ReadBatch<[uid: string, channel: string], number | null>({ load: (keys) => this.#loadCursors(keys), maxKeys: 200, maxInFlight: 2, isKeyFault: isDataError });
  // Every resume asks how far retention went (a reconnect storm: once per client); those asking together share one row read,
  // none sent before it was asked for.
  readonly #retentionReads = new ReadBatch<null, number>({ load: (keys) => this.#loadExpiredUpTo(keys.length), maxKeys: 100_000, maxInFlight: 1, isKeyFault: () => false });
  #timers: ReturnType<typeof setInterval>[] = [];
  #poll: ReturnType<typeof setInterval> | null = null;
  #draining: Promise<void> | null = null;
  #drainAgain = false;
  #listening = false;
  #closed = false;
  #pending = new Set<Promise<void>>();
  #onError: (err: unknown) => void;
  readonly #observer: StoreObserver | undefined;

  constructor(db: SqlDriver, options: SqlStoreOptions) {
    this.kind = db.kind;
    this.#db = db;
    this.#options = options;
    this.#onError = options.onError ?? ((err) => console.error('pgmesh store:', err));
    this.#observer = options.observer;
    this.#feed = new Feed((after, upTo) => this.#readRange(after, upTo), (err) => this.#report(err));
    this.#publisher = new SqlPublisher(db, {
      maxQueued: options.maxQueued,
      groupCommit: options.groupCommit,
      resolveBudgetMs: options.resolveBudgetMs,
      observer: options.observer,
      hooks: options.hooks,
      // Hand our own batch to the feed now rather than waiting for its NOTIFY to come back.
      onCommitted: (from, items) =>
        this.#feed.offer(from, from + items.length - 1, items.map((m, i) => new Message(from + i, m.channel, m.data, m.sender, m.exclude?.length ? m.exclude : null)), true),
    });
  }

  /** Whether the LISTEN connection is up (while it is not, the table is polled). */
  get listening(): boolean {
    return this.#listening;
  }

  async start(): Promise<void> {
    await this.#migrate();
    if (this.#options.maxMessage !== undefined) {
      await this.#db.query(
        `insert into mesh_setting (name, value) values ('max_message', $1) on conflict (name) do update set value = excluded.value`,
        [String(this.#options.maxMessage)],
      );
    }
    this.#feed.startAt(await this.head());
    await this.#db.listen(NOTIFY_CHANNEL, {
      onPayload: (payload) => this.#onNotify(payload),
      onListen: () => {
        this.#listening = true;
        this.#stopPolling();
        // Read what was committed while we were not listening, and anything left in the inbox.
        this.#background(this.#catchUp());
      },
      onLost: (reason) => {
        this.#listening = false;
        this.#onError(new Error(`LISTEN lost (${reason}); polling until it is back`));
        this.#startPolling();
      },
    });
    const flushEvery = this.#options.cursorFlushMs ?? 1000;
    this.#timers.push(setInterval(() => this.#background(this.flushCursors()), flushEvery));
    this.#timers.push(setInterval(() => this.#background(this.expire()), 60_000));
  }

  /** Runs work nobody awaits: its errors are reported, and close() waits for it. */
  #background(work: Promise<unknown>): void {
    const tracked = work.then(() => {}, this.#report);
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  async #catchUp(): Promise<void> {
    await this.#feed.catchUp(await this.head());
    this.#options.onHealthy?.();
    await this.#drainInbox();
  }

  /** Reports a background failure, unless we are shutting down (then failures are expected). */
  #report = (err: unknown): void => {
    if (!this.#closed) this.#onError(err);
  };

  #startPolling(): void {
    this.#poll ??= setInterval(() => this.#background(this.#catchUp()), this.#options.pollMs ?? 1000);
  }

  #stopPolling(): void {
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = null;
  }

  /** Sequences committed mesh_publish() rows into the outbox. Single-flight; a call while busy runs once more after. */
  #drainInbox(): Promise<void> {
    if (this.#draining) {
      this.#drainAgain = true;
      return this.#draining;
    }
    this.#draining = (async () => {
      await undefined; // see Feed.#repair: never settle before the assignment
      try {
        do {
          this.#drainAgain = false;
          for (;;) {
            const rows = await this.#db.query(SEQUENCE_INBOX_SQL);
            if (rows.length === 0) break;
            const to = Number(rows[0]!.last_id);
            const n = Number(rows[0]!.n);
            this.#feed.offer(to - n + 1, to, null, true);
            if (n < PAGE) break;
          }
        } while (this.#drainAgain);
      } catch (err) {
        this.#report(err);
      } finally {
        this.#draining = null;
      }
    })();
    return this.#draining;
  }

  onMessages(listener: FeedListener): void {
    this.#feed.onMessages(listener);
  }

  publish(messages: readonly NewMessage[]): Promise<number[]> {
    return this.#publisher.publish(messages);
  }

  #onNotify(payload: string): void {
    let n: Notification;
    try {
      n = JSON.parse(payload) as Notification;
    } catch {
      return; // not ours
    }
    if (n.inbox) {
      this.#background(this.#drainInbox());
      return;
    }
    const { from, to } = n;
    if (typeof from !== 'number' || typeof to !== 'number') return;
    if (typeof n.at === 'number') this.#observer?.arrived(to - from + 1, (Date.now() - n.at) / 1000);
    // Our own batches come back this way too, already released: nothing to build.
    if (to <= this.#feed.lastId) return;
    const messages = n.m ? n.m.map(([channel, data, sender, exclude], i) => new Message(from + i, channel, data, sender, exclude ?? null)) : null;
    this.#feed.offer(from, to, messages, false);
  }

  async #readRange(afterId: number, upTo: number): Promise<Message[]> {
    const rows = await this.#db.query(
      `select ${MESSAGE_COLUMNS} from mesh_message where id > $1::int8 and id <= $2::int8 order by id limit $3::int4`,
      [afterId, upTo, PAGE],
    );
    return rows.map(toMessage);
  }

  /** A read a caller waits on: a database failure becomes ERR_UNAVAILABLE naming what was not read. */
  #read(what: string, text: string, params?: readonly unknown[]): Promise<Row[]> {
    return unavailableUnless(what, this.#db.query(text, params));
  }

  /** The same, for a read that goes with others waiting (read-batch.ts). */
  #readBatched<K, V>(what: string, reads: ReadBatch<K, V>, key: K): Promise<V> {
    return unavailableUnless(what, reads.read(key));
  }

  history(channel: string, afterId: number, limit: number): Promise<Message[]> {
    return this.#readBatched('history', this.#historyReads, { channel, afterId, limit });
  }

  async #loadHistories(reads: HistoryRead[]): Promise<Message[][]> {
    const rows = await this.#db.query(HISTORY_BATCH_SQL, [JSON.stringify(reads.map((r) => [r.channel, r.afterId, r.limit]))]);
    const pages: Message[][] = reads.map(() => []);
    for (const row of rows) pages[Number(row.q) - 1]!.push(toMessage(row));
    return pages;
  }

  async recent(channel: string, limit: number): Promise<{ messages: Message[]; head: number }> {
    // One statement: the rows and the head they are complete up to come from one snapshot.
    const rows = await this.#read(
      'history',
      `with h as (select last_id from mesh_seq)
       select h.last_id as head, m.* from h left join lateral (
         select ${MESSAGE_COLUMNS} from mesh_message where channel = $1 and id <= h.last_id order by id desc limit $2::int4
       ) m on true`,
      [channel, limit],
    );
    const head = Number(rows[0]!.head);
    return { messages: rows.filter((r) => r.id !== null).map(toMessage).reverse(), head };
  }

  async cursor(uid: string, channel: string): Promise<number | null> {
    const unwritten = this.#cursors.unwritten(uid, channel);
    const stored = await this.#readBatched<[uid: string, channel: string], number | null>('cursor', this.#cursorReads, [uid, channel]);
    return unwritten > 0 ? Math.max(stored ?? 0, unwritten) : stored;
  }

  async #loadCursors(keys: [uid: string, channel: string][]): Promise<(number | null)[]> {
    const rows = await this.#db.query(CURSOR_BATCH_SQL, [JSON.stringify(keys)]);
    const found: (number | null)[] = keys.map(() => null);
    for (const row of rows) found[Number(row.q) - 1] = Number(row.last_id);
    return found;
  }

  advanceCursor(uid: string, channel: string, id: number): void {
    this.#cursors.advance(uid, channel, id);
  }

  flushCursors(): Promise<void> {
    return this.#cursors.flush(async (moves) => {
      await this.#db.query(CURSOR_UPSERT_SQL, [JSON.stringify(moves.map((m) => [m.uid, m.channel, m.id]))]);
      this.#observer?.cursorsWritten(moves.length);
    });
  }

  /** Deletes messages older than the retention at `now`, in bounded batches; returns how many went. */
  async expire(now = Date.now()): Promise<number> {
    const cutoff = new Date(now - this.#options.retentionMs).toISOString();
    let total = 0;
    for (;;) {
      const rows = await this.#db.query(
        `with gone as (
           delete from mesh_message where id in (
             select id from mesh_message where created_at < $1::timestamptz order by created_at limit 5000)
           returning id
         ), mark as (
           update mesh_retention set expired_upto = greatest(expired_upto, (select max(id) from gone))
           where exists (select 1 from gone)
         )
         select count(*)::int4 as n from gone`,
        [cutoff],
      );
      const n = Number(rows[0]!.n);
      total += n;
      if (n < 5000) break;
    }
    // A token is only asked for within a minute of its statement; keep them ten.
    await this.#db.query(`delete from mesh_publish_log where at < $1::timestamptz`, [new Date(now - 600_000).toISOString()]);
    return total;
  }

  expiredUpTo(): Promise<number> {
    return this.#readBatched('retention', this.#retentionReads, null);
  }

  async #loadExpiredUpTo(readers: number): Promise<number[]> {
    const value = Number((await this.#db.query('select expired_upto from mesh_retention'))[0]!.expired_upto);
    return new Array<number>(readers).fill(value);
  }

  get position(): number {
    return this.#feed.lastId;
  }

  async ping(): Promise<void> {
    await this.#db.query('select 1');
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#stopPolling();
    await Promise.all(this.#pending);
    this.#feed.stop();
    // The last chance to write cursors: a failure here means duplicates on the next connect, so say so.
    await this.flushCursors().catch((err) => this.#onError(new Error('cursor positions not written at shutdown', { cause: err })));
    await this.#db.close();
  }

  async findMercureEvent(eventId: string): Promise<number | null> {
    const rows = await this.#read('event id', MERCURE_EVENT_SQL, [eventId]);
    return rows.length === 0 ? null : Number(rows[0]!.id);
  }

  async head(): Promise<number> {
    return Number((await this.#read('head', 'select last_id from mesh_seq'))[0]!.last_id);
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


async function unavailableUnless<T>(what: string, read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (err) {
    throw new MeshError('ERR_UNAVAILABLE', `store unavailable: ${what} not read`, { cause: err });
  }
}

/** One page of one channel's history. */
interface HistoryRead {
  channel: string;
  afterId: number;
  limit: number;
}

function toMessage(row: Row): Message {
  const exclude = row.exclude as string[] | null;
  return new Message(Number(row.id), row.channel as string, row.data as string, (row.sender as string | null) ?? null, exclude?.length ? exclude : null);
}
