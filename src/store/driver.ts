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

export interface SqlDriver extends SqlQuery {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction on one connection. */
  transaction<T>(fn: (tx: SqlQuery) => Promise<T>): Promise<T>;
  /** LISTENs on `channel`; `onListen` runs on every (re)connect, to catch up. */
  listen(channel: string, onPayload: (payload: string) => void, onListen: () => void): Promise<void>;
  close(): Promise<void>;
}
