/**
 * Several pgmesh processes — on bun, node and deno — sharing one real Postgres
 * database: the backplane (LISTEN/NOTIFY + outbox) under concurrency and faults.
 */
import { describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { collect, startCluster } from './harness/cluster.ts';
import { onChannel } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';
import { SCHEMA_VERSION } from '../src/store/schema.ts';

const { databaseUrl, instances } = await startCluster(['bun', 'node', 'deno']);
const [A, B, C] = instances as [(typeof instances)[0], (typeof instances)[0], (typeof instances)[0]];
const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });

/** B's LISTEN sessions as the server sees them (what a failed wait prints). */
const listenSessions = async () =>
  JSON.stringify(await sql`select pid, state, backend_start, state_change, left(query, 60) as query from pg_stat_activity where application_name = 'pgmesh-B-listen' and datname = current_database()`);
const singleListen = async () => (await sql`select count(*)::int as n from pg_stat_activity where application_name = 'pgmesh-B-listen' and datname = current_database()`)[0]!.n === 1;

const isText = (prefix: string) => (f: unknown) => typeof f === 'string' && f.startsWith(prefix);

describe('a cluster of three instances on one Postgres', () => {
  test('a publish on A reaches subscribers on A, B and C', async () => {
    const subs = await Promise.all(instances.map((i) => i.login('fan-1')));
    for (const s of subs) await s.request({ op: 'subscribe', args: ['room_fan'] });
    const [a] = subs;
    const reply = await a!.request({ op: 'sendtoroom', args: ['room_fan', 'to everyone'] });
    for (const s of subs) expect(await s.next(onChannel('room_fan'))).toMatchObject({ data: 'to everyone', id: reply.id });
    expect((await A.publish({ c: 'room_fan', d: 'from the API on A' })).status).toBe(200);
    for (const s of subs) expect(await s.next((f) => f === 'from the API on A')).toBe('from the API on A');
  });

  test('3 publishers x 2,000 messages: every subscriber gets all 6,000, each publisher in order, one total order', async () => {
    const subs = await Promise.all(instances.flatMap((i) => [i.login('order-1'), i.login('order-2')]));
    for (const s of subs) await s.request({ op: 'subscribe', args: ['room_order'] });
    const N = 2000;
    await Promise.all(
      instances.map(async (instance) => {
        for (let i = 0; i < N; i++) {
          const res = await instance.publish({ c: 'room_order', d: `${instance.id}-${i}` });
          if (res.status !== 200) throw new Error(`publish ${instance.id}-${i}: ${res.status}`);
        }
      }),
    );
    const orders = await Promise.all(subs.map((s) => collect(s, 3 * N, isText(''), 60_000)));
    for (const order of orders) {
      expect(order).toHaveLength(3 * N);
      expect(new Set(order).size).toBe(3 * N);
      for (const p of ['A', 'B', 'C']) {
        const mine = order.filter((t) => t.startsWith(`${p}-`)).map((t) => Number(t.slice(2)));
        expect(mine).toEqual(Array.from({ length: N }, (_, i) => i));
      }
      expect(order).toEqual(orders[0]!);
    }
  }, 120_000);

  test("B's LISTEN connection is killed mid-stream: B's subscribers still get every message exactly once", async () => {
    const sub = await B.login('fault-1');
    await sub.request({ op: 'subscribe', args: ['room_fault'] });
    const N = 600;
    let killed = 0;
    for (let i = 0; i < N; i++) {
      if (i === 200) {
        // One live session to kill: a busy machine can have B between a missed heartbeat and its new session.
        await pollUntil(singleListen, 15_000, 'B with one LISTEN session', 50, listenSessions);
        const rows = await sql`select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = 'pgmesh-B-listen' and datname = current_database()`;
        killed = rows.filter((r) => r.ok).length;
      }
      expect((await A.publish({ c: 'room_fault', d: `f-${i}` })).status).toBe(200);
    }
    expect(killed).toBe(1);
    const got = await collect(sub, N, isText('f-'));
    expect(got).toEqual(Array.from({ length: N }, (_, i) => `f-${i}`));
    // B listens again by itself (a new session with the same name), not merely polling.
    await pollUntil(async () => ((await (await fetch(`${B.url}/healthz`)).json()) as { listening: boolean }).listening, 15_000, 'B listening again');
    await pollUntil(singleListen, 15_000, 'B with one LISTEN session', 50, listenSessions);
  }, 60_000);

  test("B's LISTEN session is terminated as it publishes, 50 times in a row: every publish answers 200 and arrives everywhere once", async () => {
    const subs = await Promise.all(instances.map((i) => i.login('drop-1')));
    for (const s of subs) await s.request({ op: 'subscribe', args: ['room_drop'] });
    const statuses: number[] = [];
    let terminated = 0;
    for (let i = 0; i < 50; i++) {
      // B has listened again since the last round: each round kills a live session.
      await pollUntil(singleListen, 15_000, 'B listening again', 50, listenSessions);
      const [killed, res] = await Promise.all([
        sql`select count(*)::int as n from (select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgmesh-B-listen' and datname = current_database()) t`,
        B.publish({ c: 'room_drop', d: `drop-${i}` }),
      ]);
      terminated += killed[0]!.n;
      statuses.push(res.status);
    }
    expect(statuses).toEqual(Array(50).fill(200));
    expect(terminated).toBe(50);
    for (const s of subs) expect(await collect(s, 50, isText('drop-'))).toEqual(Array.from({ length: 50 }, (_, i) => `drop-${i}`));
  }, 90_000);

  test('a 200 KB and a 1 MiB message cross instances intact; one over the limit gets 413', async () => {
    const sub = await C.login('big-1');
    await sub.request({ op: 'subscribe', channel: '@user' });
    const kb200 = 'a'.repeat(200 * 1024 - 10) + '€ü';
    const mib = 'b'.repeat(1024 * 1024);
    expect((await A.publish({ c: 'user:big-1', d: kb200 })).status).toBe(200);
    expect((await B.publish({ c: 'user:big-1', d: mib })).status).toBe(200);
    const [first, second] = await collect(sub, 2, (f) => typeof f === 'string' && f.length > 100_000);
    expect(first).toBe(kb200);
    expect(second).toBe(mib);
    const over = await A.publish({ c: 'user:big-1', d: 'c'.repeat(1024 * 1024 + 1) });
    expect(over.status).toBe(413);
    expect(await over.json()).toMatchObject({ code: 'ERR_TOO_LARGE' });
  }, 60_000);

  test("mesh_publish() in the application's transaction: rolled back delivers nothing, committed is delivered", async () => {
    const subs = await Promise.all([A.login('php-1'), C.login('php-1')]);
    for (const s of subs) await s.request({ op: 'subscribe', channel: '@user' });
    await sql
      .begin(async (tx) => {
        await tx`select mesh_publish('user:php-1', 'order 1 rolled back')`;
        throw new Error('payment failed');
      })
      .catch(() => {});
    await sql.begin(async (tx) => {
      await tx`select mesh_publish('user:php-1', 'order 2 paid')`;
    });
    for (const s of subs) {
      expect(await s.next(isText('order '))).toBe('order 2 paid');
      expect(s.texts).not.toContain('order 1 rolled back');
    }
  });

  test('since resumes a channel on another instance, and the offline cursor follows the user across instances', async () => {
    // Resume: seen up to an id on A, continue on C from that id.
    const onA = await A.login('resume-1');
    await onA.request({ op: 'subscribe', args: ['room_resume'] });
    const ids: number[] = [];
    for (const d of ['r1', 'r2', 'r3']) ids.push(((await (await B.publish({ c: 'room_resume', d })).json()) as { id: number }).id);
    await collect(onA, 3, isText('r'));
    onA.close();
    const onC = await C.login('resume-1');
    await onC.request({ op: 'subscribe', args: ['room_resume'], since: ids[1] });
    await B.publish({ c: 'room_resume', d: 'r4' });
    expect(await collect(onC, 2, isText('r'))).toEqual(['r3', 'r4']);

    // Offline cursor: connected on A, offline while B publishes, back on C.
    const first = await A.login('roam-1');
    await first.request({ op: 'subscribe', channel: '@user' });
    await A.publish({ c: 'user:roam-1', d: 'm-before' });
    await first.next((f) => f === 'm-before');
    first.close();
    await first.closed;
    await B.publish([{ c: 'user:roam-1', d: 'm-offline-1' }, { c: 'user:roam-1', d: 'm-offline-2' }]);
    const back = await C.login('roam-1');
    await back.request({ op: 'subscribe', channel: '@user' });
    await back.next((f) => f === 'm-offline-2');
    expect(back.texts.filter((t) => t.startsWith('m-'))).toEqual(['m-offline-1', 'm-offline-2']);
  });
});

describe('starting instances', () => {
  test('two instances starting at once on an empty database both come up (migration lock)', async () => {
    const { instances: pair, databaseUrl: url } = await startCluster(['bun', 'bun']);
    for (const i of pair) expect(await (await fetch(`${i.url}/healthz`)).json()).toMatchObject({ ok: true, store: 'postgres' });
    const sub = await pair[1]!.login('mig-1');
    await sub.request({ op: 'subscribe', channel: '@user' });
    await pair[0]!.publish({ c: 'user:mig-1', d: 'both up' });
    expect(await sub.next((f) => f === 'both up')).toBe('both up');
    // Each migration was applied exactly once.
    const db = postgres(url, { max: 1, onnotice: () => {} });
    const versions = await db`select version from mesh_schema order by version`;
    await db.end();
    expect(versions.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  }, 60_000);
});
