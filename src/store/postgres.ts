/**
 * The Postgres-server store driver, on postgres.js. Queries use a small pool;
 * LISTEN uses postgres.js's dedicated connection, which re-LISTENs after a drop
 * and calls onListen each time so the store can catch up. That connection must
 * be a direct session to the primary: through a transaction pooler LISTEN
 * "succeeds" and nothing ever arrives, and replicas refuse it.
 */
import postgres from 'postgres';
import type { Row, SqlDriver, SqlQuery } from './driver.ts';

/** Connects to a Postgres server. */
export async function openPostgres(url: string, options: { max?: number } = {}): Promise<SqlDriver> {
  const sql = postgres(url, {
    max: options.max ?? 8,
    onnotice: () => {},
    connect_timeout: 5,
  });
  const asQuery = (q: postgres.Sql | postgres.TransactionSql): SqlQuery => ({
    query: async (text, params) => (await q.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as Row[],
    exec: async (text) => void (await q.unsafe(text)),
  });
  return {
    kind: 'postgres',
    ...asQuery(sql),
    transaction: async (fn) => (await sql.begin((tx) => fn(asQuery(tx)))) as Awaited<ReturnType<typeof fn>>,
    listen: async (channel, onPayload, onListen) => {
      await sql.listen(channel, onPayload, onListen);
    },
    close: () => sql.end({ timeout: 5 }),
  };
}
