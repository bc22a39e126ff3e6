/**
 * What the SQL store needs from a Postgres connection: queries, a transaction,
 * and LISTEN. postgres.ts (a real server) and pglite.ts (embedded) provide it.
 */

export type Row = Record<string, unknown>;

export interface SqlQuery {
  /** Runs one parameterised statement. */
  query(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs several statements (DDL) with no parameters. */
  exec(text: string): Promise<void>;
}

export interface ListenEvents {
  onPayload(payload: string): void;
  /** Runs on every (re)connect, after LISTEN: the store catches up here. */
  onListen(): void;
  /** The listening connection dropped or stopped answering; notifications may be missed until onListen. */
  onLost(reason: string): void;
}

export interface SqlDriver extends SqlQuery {
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs one statement after every statement queued here before it has finished at the
   * server, without waiting for their answers to come back: statements queued in order
   * commit in that order, and a far database costs one round trip for all of them.
   */
  queryInOrder(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs `fn` in one transaction on one connection. */
  transaction<T>(fn: (tx: SqlQuery) => Promise<T>): Promise<T>;
  /** LISTENs on `channel` from now on, reconnecting by itself; resolves once first listening. */
  listen(channel: string, events: ListenEvents): Promise<void>;
  close(): Promise<void>;
}

/**
 * A statement whose answer was lost after it may have reached the server (the
 * connection died, or the answer missed its deadline). It may have committed:
 * by `settledBy` (epoch ms) the server has finished or aborted it for sure.
 */
export class OutcomeUnknown extends Error {
  override name = 'OutcomeUnknown';
  constructor(
    message: string,
    readonly settledBy: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Whether the database refused a statement for the data it carried (SQLSTATE class 22: bad text, out of range…), not for being down. */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('22');
}
