/**
 * The ceiling of one Postgres (issue 25, item 6): how many messages a second a
 * cluster on one database commits, with 1, 3 and 6 instances, single-message
 * POSTs and 100-message batches; and, beside it, the publish statement alone —
 * K connections running it back to back with no pgmesh in between — which is
 * what the one-row counter (mesh_seq, taken by every publish until its commit)
 * lets through at all. Each row also says how busy the database was, how many
 * sessions waited on a lock (the counter) on average, and the CPU each side
 * used, so a reader sees what stopped it: the counter, the database's CPU, or
 * pgmesh's.
 */
import autocannon from 'autocannon';
import postgres from 'postgres';
import { PUBLISH_SQL } from '../../src/store/statements.ts';
import { payload } from '../load.ts';
import { cpuMs, postgresCpuMs } from '../proc.ts';
import type { RunningSystem } from '../systems.ts';

export interface CeilingResult {
  /** `pgmesh`: through /v1/mesh/publish of `instances` instances; `sql`: the publish statement alone on `instances` connections. */
  driver: 'pgmesh' | 'sql';
  store: 'postgres' | 'embedded';
  instances: number;
  mode: 'single' | 'batch100';
  messagesPerSec: number;
  /** Publish statements committed per second (each takes the counter once), and messages per statement. */
  statementsPerSec: number;
  groupSize: number;
  /** Sessions waiting on a lock, on average over the run (the counter is the only lock publishes wait on). */
  lockWaiters: number;
  /** Sessions running a statement, on average (how busy the database was). */
  active: number;
  /** The POSTs' p99 (pgmesh rows), ms. */
  p99: number;
  failed: number;
  /** CPU used, in cores: the pgmesh processes and the Postgres server. */
  serverCores: number;
  postgresCores: number;
}

/** Samples pg_stat_activity every 50 ms until stopped: the mean lock waiters and active sessions. */
function watchActivity(databaseUrl: string): { stop: () => Promise<{ lockWaiters: number; active: number }> } {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  let running = true;
  let samples = 0;
  let waiters = 0;
  let active = 0;
  const loop = (async () => {
    while (running) {
      const [row] = await sql`
        select count(*) filter (where wait_event_type = 'Lock')::int as waiting, count(*) filter (where state = 'active')::int - 1 as active
        from pg_stat_activity where datname = current_database()`;
      samples++;
      waiters += row!.waiting as number;
      active += row!.active as number;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the sampling period
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await sql.end();
      return { lockWaiters: samples ? waiters / samples : 0, active: samples ? active / samples : 0 };
    },
  };
}

async function statementsSoFar(databaseUrl: string): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select count(*)::int8 as n from mesh_publish_log`;
    return Number(row!.n);
  } finally {
    await sql.end();
  }
}

/** pgmesh: every instance POSTed to at once (64 connections each for single messages, 16 for batches) for `seconds`. */
export async function ceilingThroughPgmesh(instances: RunningSystem[], databaseUrl: string | null, mode: CeilingResult['mode'], seconds: number): Promise<CeilingResult> {
  const body = JSON.stringify(mode === 'single' ? { c: 'ceiling', d: payload(0) } : Array.from({ length: 100 }, (_, i) => ({ c: 'ceiling', d: payload(i) })));
  const perRequest = mode === 'single' ? 1 : 100;
  const watch = databaseUrl === null ? null : watchActivity(databaseUrl);
  const statements0 = databaseUrl === null ? 0 : await statementsSoFar(databaseUrl);
  const cpu0 = instances.map((i) => cpuMs(i.pid));
  const pg0 = postgresCpuMs();
  const started = performance.now();
  const results = await Promise.all(
    instances.map((i) =>
      autocannon({
        url: i.publishUrl,
        requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body }],
        connections: mode === 'single' ? 64 : 16,
        pipelining: 1,
        duration: seconds,
      }),
    ),
  );
  const wall = (performance.now() - started) / 1000;
  const serverCores = instances.reduce((sum, i, k) => sum + (cpuMs(i.pid) - cpu0[k]!), 0) / 1000 / wall;
  const postgresCores = (postgresCpuMs() - pg0) / 1000 / wall;
  const activity = watch === null ? { lockWaiters: NaN, active: NaN } : await watch.stop();
  const statements = databaseUrl === null ? NaN : (await statementsSoFar(databaseUrl)) - statements0;
  const acked = results.reduce((n, r) => n + r['2xx'], 0) * perRequest;
  return {
    driver: 'pgmesh',
    store: databaseUrl === null ? 'embedded' : 'postgres',
    instances: instances.length,
    mode,
    messagesPerSec: acked / seconds,
    statementsPerSec: statements / seconds,
    groupSize: acked / statements,
    ...activity,
    p99: Math.max(...results.map((r) => r.latency.p99)),
    failed: results.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0),
    serverCores,
    postgresCores,
  };
}

/** The publish statement alone: `connections` sessions each running it back to back (1 or 100 messages each) for `seconds`. */
export async function ceilingOfStatement(databaseUrl: string, connections: number, mode: CeilingResult['mode'], seconds: number): Promise<CeilingResult> {
  const n = mode === 'single' ? 1 : 100;
  const batch = JSON.stringify(Array.from({ length: n }, (_, i) => ['ceiling', payload(i), null, null]));
  const fits = batch.length <= 7800;
  const sessions = Array.from({ length: connections }, () => postgres(databaseUrl, { max: 1, onnotice: () => {}, prepare: true }));
  const watch = watchActivity(databaseUrl);
  const pg0 = postgresCpuMs();
  const bench0 = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let statements = 0;
  let failed = 0;
  try {
    await Promise.all(
      sessions.map(async (sql) => {
        while (performance.now() < deadline) {
          try {
            await sql.unsafe(PUBLISH_SQL, [batch, n, fits, crypto.randomUUID()]);
            statements++;
          } catch {
            failed++;
          }
        }
      }),
    );
  } finally {
    await Promise.all(sessions.map((s) => s.end()));
  }
  const wall = (performance.now() - started) / 1000;
  const postgresCores = (postgresCpuMs() - pg0) / 1000 / wall;
  const bench = process.cpuUsage(bench0);
  const activity = await watch.stop();
  return {
    driver: 'sql',
    store: 'postgres',
    instances: connections,
    mode,
    messagesPerSec: (statements * n) / wall,
    statementsPerSec: statements / wall,
    groupSize: n,
    ...activity,
    p99: NaN,
    failed,
    // The bench process itself drove the statements.
    serverCores: (bench.user + bench.system) / 1e6 / wall,
    postgresCores,
  };
}
