/**
 * A machine outside the primary region: its Postgres connections pass through a
 * proxy that adds 60 ms each way. It still delivers across instances, resumes
 * and publishes, and its LISTEN heartbeat and query deadline do not misfire; a
 * burst of publishes while its connection to the database opens (at start, and
 * again when its connections are replaced) is answered in a few round trips,
 * none left waiting for the deadline.
 * (Its publish latency and throughput are measured by the benchmark, not here.)
 */
import { afterAll, describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { freshDatabase } from './harness/postgres.ts';
import { startProcess } from './harness/process.ts';
import { startLatencyProxy } from './harness/tcp-proxy.ts';
import { token } from './harness/tokens.ts';
import { connect, onChannel } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';

const database = new URL(await freshDatabase());
const distance = await startLatencyProxy(Number(database.port), 60);
const farUrl = new URL(database);
farUrl.port = String(distance.port);
// Heartbeats every second: several of them cross the distance during the test.
const near = await startProcess('bun', { DATABASE_URL: database.toString(), MESH_INSTANCE_ID: 'near', MESH_HEARTBEAT: '1s' });
const far = await startProcess('node', { DATABASE_URL: farUrl.toString(), MESH_INSTANCE_ID: 'far', MESH_HEARTBEAT: '1s' }, 90_000);
afterAll(async () => {
  await Promise.all([near.stop(), far.stop()]);
  await distance.close();
});

const publish = (base: string, body: unknown) => fetch(`${base}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('an instance 60 ms each way from Postgres', () => {
  test('delivers what the near instance publishes, publishes to it, and resumes a client that was away', async () => {
    const onFar = await connect(`${far.url.replace('http', 'ws')}/v1/ws?format=envelope`);
    expect(await onFar.request({ op: 'auth', token: await token('far-1') })).toMatchObject({ success: true, instance: 'far' });
    expect(await onFar.request({ op: 'subscribe', channels: ['room_far'] })).toMatchObject({ success: true });
    const onNear = await connect(`${near.url.replace('http', 'ws')}/v1/ws?format=envelope`);
    expect(await onNear.request({ op: 'auth', token: await token('near-1') })).toMatchObject({ success: true });
    expect(await onNear.request({ op: 'subscribe', channels: ['room_far'] })).toMatchObject({ success: true });

    expect((await publish(near.url, { c: 'room_far', d: 'from near' })).status).toBe(200);
    expect(await onFar.next(onChannel('room_far'))).toMatchObject({ data: 'from near' });
    const res = await publish(far.url, [{ c: 'room_far', d: 'from far 1' }, { c: 'room_far', d: 'from far 2' }]);
    expect(res.status).toBe(200);
    expect(await onNear.next(onChannel('room_far'))).toMatchObject({ data: 'from near' });
    expect(await onNear.next(onChannel('room_far'))).toMatchObject({ data: 'from far 1' });
    expect(await onNear.next(onChannel('room_far'))).toMatchObject({ data: 'from far 2' });
    const last = (await onFar.next(onChannel('room_far'))) as { data: string; id: number };
    expect(last.data).toBe('from far 1');
    await onFar.next(onChannel('room_far'));

    // Away while three messages go out on the near instance, then back on the far one with `since`.
    onFar.close();
    const sent: number[] = [];
    for (const d of ['missed 1', 'missed 2', 'missed 3']) sent.push(((await (await publish(near.url, { c: 'room_far', d })).json()) as { id: number }).id);
    const back = await connect(`${far.url.replace('http', 'ws')}/v1/ws?format=envelope`);
    expect(await back.request({ op: 'auth', token: await token('far-1') })).toMatchObject({ success: true });
    expect(await back.request({ op: 'subscribe', channels: ['room_far'], since: last.id + 1 })).toMatchObject({ success: true });
    const resumed = [];
    for (let i = 0; i < 3; i++) resumed.push((await back.next(onChannel('room_far'))) as { id: number; data: string });
    expect(resumed.map((m) => m.data)).toEqual(['missed 1', 'missed 2', 'missed 3']);
    expect(resumed.map((m) => m.id)).toEqual(sent);
    back.close();
    onNear.close();

    // No deadline or heartbeat took the distance for a failure.
    expect(far.stderr()).not.toContain('LISTEN lost');
    expect(far.stderr()).not.toMatch(/deadline|timed out|ERR_UNAVAILABLE/i);
  }, 120_000);

  test('a burst of publishes while the connection that carries them opens: each answered in a few round trips, at start and on the connections that replace lost ones', async () => {
    const fresh = await startProcess('bun', { DATABASE_URL: farUrl.toString(), MESH_INSTANCE_ID: 'far-burst', MESH_HEARTBEAT: '1s' }, 90_000);
    const sql = postgres(database.toString(), { max: 1, onnotice: () => {} });
    try {
      const batch = Array.from({ length: 100 }, (_, i) => ({ c: 'room_burst', d: `m${i}` }));
      /** 32 publishers sending 100-message batches back to back for `ms`: the slowest answer, and how many. */
      const burst = async (label: string, ms: number) => {
        const until = Date.now() + ms;
        let slowest = 0;
        let answered = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (Date.now() < until) {
              const at = Date.now();
              const res = await fetch(`${fresh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch), signal: AbortSignal.timeout(20_000) });
              if (res.status !== 200) throw new Error(`${label}: publish answered ${res.status} ${await res.text()} after ${Date.now() - at} ms`);
              await res.arrayBuffer();
              slowest = Math.max(slowest, Date.now() - at);
              answered++;
            }
          }),
        );
        return { slowest, answered };
      };
      // Its first publishes open the connection; the load goes on for longer than any of them may wait.
      const first = await burst('at start', 4000);
      expect(first.answered).toBeGreaterThan(50);
      expect(first.slowest).toBeLessThan(2500);

      // Its LISTEN session is lost: the instance replaces its connections, and the next burst opens new ones.
      const ended = await sql`select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = 'pgmesh-far-burst-listen'`;
      expect(ended[0]!.n).toBe(1);
      await pollUntil(async () => fresh.stderr().includes('LISTEN lost'), 10_000, 'the instance noticed');
      const again = await burst('on new connections', 4000);
      expect(again.slowest).toBeLessThan(2500);
      expect(fresh.stderr()).not.toMatch(/deadline|took longer/i);
    } finally {
      await sql.end();
      await fresh.stop();
    }
  }, 120_000);
});
