/**
 * The Postgres-server store driver, on postgres.js. Queries use a small pool.
 * LISTEN uses a connection of its own that we manage: postgres.js's built-in
 * `listen` re-listens after a drop but cannot notice a half-open socket and
 * swallows errors while re-listening. Ours heartbeats the listening session
 * (`pg_listening_channels()` with a deadline) and, on any failure, drops it and
 * reconnects with backoff; the store polls meanwhile.
 *
 * That connection must be a direct session to the primary: through a
 * transaction pooler LISTEN "succeeds" and nothing ever arrives, and replicas
 * refuse it.
 */
import postgres from 'postgres';
import { OutcomeUnknown, type ListenEvents, type Row, type SqlDriver, type SqlQuery } from './driver.ts';

export interface PostgresOptions {
  /** Pool size for queries. */
  max?: number;
  /** Shown as application_name in pg_stat_activity (the listener adds "-listen"). */
  applicationName?: string;
  /** How often the listening session is checked. */
  heartbeatMs?: number;
  /** A Unix socket to connect through instead of the URL's host (the embedded server's). */
  socket?: string;
}

const CONNECT_TIMEOUT_S = 3;
const QUERY_DEADLINE_MS = 10_000;
/** The server aborts a statement running longer: what bounds the life of a statement whose answer was lost. */
const STATEMENT_TIMEOUT_MS = 5_000;
/** How long a replaced pool's in-flight queries may still finish before its sockets are destroyed. */
const RETIRE_GRACE_S = 2;
// Failures that happen before a statement can have reached the server: nothing ran.
const NEVER_SENT = new Set(['ECONNREFUSED', 'CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'CONNECTION_ENDED']);

/** Connects to a Postgres server. */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<SqlDriver> {
  const name = (options.applicationName ?? 'pgmesh').slice(0, 56);
  const makePool = (max: number, onclose?: () => void) =>
    postgres(url, {
      max,
      path: options.socket,
      onnotice: () => {},
      connect_timeout: CONNECT_TIMEOUT_S,
      keep_alive: 10,
      connection: { application_name: name, statement_timeout: STATEMENT_TIMEOUT_MS },
      onclose,
    });
  let pool = makePool(options.max ?? 8);
  // A half-open socket makes a query hang until TCP gives up (many minutes). So every
  // query has a deadline, and a missed deadline — or a dead LISTEN session, which
  // usually means the network path died — replaces the pool. The old one is retired
  // gracefully: queries in flight on its healthy connections finish (a LISTEN drop on a
  // healthy database fails nothing); after RETIRE_GRACE_S what still hangs is destroyed.
  const resetPool = () => {
    const old = [pool, lane.sql];
    pool = makePool(options.max ?? 8);
    lane = makeLane();
    for (const retired of old) void retired.end({ timeout: RETIRE_GRACE_S }).catch(() => {});
  };
  const asQuery = (q: () => postgres.Sql | postgres.TransactionSql, deadlineMs: number | null): SqlQuery => ({
    query: async (text, params) => {
      const run = q().unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true });
      try {
        return (await (deadlineMs === null ? run : withDeadline(run, deadlineMs, resetPool))) as unknown as Row[];
      } catch (err) {
        throw classify(err);
      }
    },
    exec: async (text) => void (await q().unsafe(text)),
  });
  // A pool of one connection is an ordered lane: postgres.js pipelines a busy connection's
  // queries, and the server runs one connection's statements one after another. Each lane has
  // a gate of its own: a retired lane's late answer, or its connection closing, says nothing
  // about the lane in use.
  const makeLane = (): Lane => {
    const gate = new OpeningGate();
    const sql = makePool(1, () => gate.closed());
    const query = asQuery(() => sql, QUERY_DEADLINE_MS).query;
    return { sql, run: (text, params) => gate.run(() => query(text, params)) };
  };
  let lane = makeLane();
  const listeners: Listener[] = [];
  return {
    kind: 'postgres',
    ...asQuery(() => pool, QUERY_DEADLINE_MS),
    queryInOrder: (text, params) => lane.run(text, params),
    transaction: async (fn) => (await pool.begin((tx) => fn(asQuery(() => tx, null)))) as Awaited<ReturnType<typeof fn>>,
    listen: async (channel, events) => {
      const listener = new Listener(url, channel, {
        ...events,
        onLost: (reason) => {
          resetPool();
          events.onLost(reason);
        },
      }, `${name}-listen`, options.heartbeatMs ?? 10_000, options.socket);
      listeners.push(listener);
      await listener.start();
    },
    close: async () => {
      await Promise.all(listeners.map((l) => l.stop()));
      await Promise.all([pool.end({ timeout: 5 }), lane.sql.end({ timeout: 5 })]);
    },
  };
}

/**
 * Holds a connection's queries back while it opens, letting one through. postgres.js gives
 * a connection that has just opened only part of the queries queued meanwhile (it counts
 * that connection among the ones still opening, and shares the queue out); the rest wait
 * until the connection is idle, which under steady load is never, so they met the query
 * deadline instead. Far from the database, where opening takes half a second of round
 * trips, every new connection (the first, and each one after max_lifetime or a drop)
 * stranded some publishes that way. So the first query opens the connection and the
 * others, in the order they came, wait for it to be answered.
 */
class OpeningGate {
  #open = false;
  #opening: Promise<unknown> | null = null;

  /** The connection closed (postgres.js opens another on the next query). */
  closed(): void {
    this.#open = false;
  }

  /** Runs `query` at once while the connection is open; while it opens, after the query that opens it. */
  async run<R>(query: () => Promise<R>): Promise<R> {
    // Promise reactions run in the order they were registered: the waiters go in call order.
    while (!this.#open && this.#opening !== null) await this.#opening.catch(() => {});
    if (this.#open) return query();
    const running = query();
    this.#opening = running;
    try {
      const result = await running;
      this.#open = true;
      return result;
    } finally {
      if (this.#opening === running) this.#opening = null;
    }
  }
}

/** An ordered lane: a pool of one connection, and its queries, held by the lane's own gate while it opens. */
interface Lane {
  sql: postgres.Sql;
  run: SqlQuery['query'];
}

/** A query past its deadline: its socket is destroyed within RETIRE_GRACE_S by the pool's replacement. */
class DeadlineMissed extends Error {
  override name = 'DeadlineMissed';
}

function withDeadline<T>(work: Promise<T>, ms: number, onMiss: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onMiss();
      reject(new DeadlineMissed(`query took longer than ${ms} ms`));
    }, ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * What a failed query tells about its statement. An error the server reported means it
 * did not commit; a refused connection means it never ran. Anything else — the connection
 * died, the answer missed its deadline — means it may have run: OutcomeUnknown, with the
 * moment by which the server has finished or aborted it (statement_timeout after the
 * socket is gone).
 */
function classify(err: unknown): unknown {
  if (err instanceof postgres.PostgresError) return err;
  const code = (err as { code?: string }).code;
  if (code !== undefined && NEVER_SENT.has(code)) return err;
  const socketGoneBy = Date.now() + (err instanceof DeadlineMissed ? RETIRE_GRACE_S * 1000 : 0);
  return new OutcomeUnknown(`answer lost: ${(err as Error).message}`, socketGoneBy + STATEMENT_TIMEOUT_MS + 1000, { cause: err });
}

/** One LISTEN session, kept alive and re-established. */
class Listener {
  #conn: postgres.Sql | null = null;
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #retry: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #stopped = false;
  #firstListen: { resolve: () => void } | null = null;

  constructor(
    readonly url: string,
    readonly channel: string,
    readonly events: ListenEvents,
    readonly applicationName: string,
    readonly heartbeatMs: number,
    readonly socket: string | undefined,
  ) {}

  /** Resolves once listening for the first time (it keeps retrying until then). */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.#firstListen = { resolve };
      void this.#connect();
    });
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const conn = postgres(this.url, {
      max: 1,
      path: this.socket,
      idle_timeout: 0,
      max_lifetime: 0,
      fetch_types: false,
      connect_timeout: CONNECT_TIMEOUT_S,
      keep_alive: 10,
      onnotice: () => {},
      connection: { application_name: this.applicationName },
      onnotify: (channel: string, payload: string) => {
        if (channel === this.channel && this.#conn === conn) this.events.onPayload(payload);
      },
      onclose: () => {
        if (this.#conn === conn) this.#fail('listen connection closed');
      },
    } as postgres.Options<Record<string, never>>);
    this.#conn = conn;
    try {
      await conn.unsafe(`listen "${this.channel.replace(/"/g, '""')}"`);
    } catch (err) {
      if (this.#conn === conn) this.#fail(`listen failed: ${(err as Error).message}`);
      return;
    }
    if (this.#conn !== conn) return;
    this.#attempt = 0;
    this.#heartbeat = setInterval(() => void this.#beat(conn), this.heartbeatMs);
    this.events.onListen();
    this.#firstListen?.resolve();
    this.#firstListen = null;
  }

  async #beat(conn: postgres.Sql): Promise<void> {
    try {
      const rows = await withDeadline(conn.unsafe('select pg_listening_channels() as channel'), Math.min(5000, this.heartbeatMs), () => {});
      if (!rows.some((r) => r.channel === this.channel)) throw new Error('session is no longer listening (a transaction pooler?)');
    } catch (err) {
      if (this.#conn === conn) this.#fail(`heartbeat failed: ${(err as Error).message}`);
    }
  }

  #fail(reason: string): void {
    const conn = this.#conn;
    this.#conn = null;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    void conn?.end({ timeout: 0 }).catch(() => {});
    if (this.#stopped) return;
    this.events.onLost(reason);
    const delay = Math.min(5000, 100 * 2 ** this.#attempt++);
    this.#retry = setTimeout(() => void this.#connect(), delay * (0.5 + Math.random() / 2));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#retry) clearTimeout(this.#retry);
    const conn = this.#conn;
    this.#conn = null;
    this.#firstListen?.resolve();
    await conn?.end({ timeout: 1 }).catch(() => {});
  }
}
