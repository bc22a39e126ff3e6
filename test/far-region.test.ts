/**
 * A machine outside the primary region: its Postgres connections pass through a
 * proxy that adds 60 ms each way. It still delivers across instances, resumes
 * and publishes, and its LISTEN heartbeat and query deadline do not misfire.
 * (Its publish latency and throughput are measured by the benchmark, not here.)
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { freshDatabase } from './harness/postgres.ts';
import { startProcess } from './harness/process.ts';
import { startLatencyProxy } from './harness/tcp-proxy.ts';
import { token } from './harness/tokens.ts';
import { connect, onChannel } from './harness/ws-client.ts';

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
});
