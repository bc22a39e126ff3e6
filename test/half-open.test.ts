/**
 * A half-open LISTEN socket: the link to Postgres goes silent without closing.
 * The heartbeat notices, the instance polls and reconnects by itself, and its
 * subscribers miss nothing.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { collect, startCluster } from './harness/cluster.ts';
import { freshDatabase } from './harness/postgres.ts';
import { startTcpProxy } from './harness/tcp-proxy.ts';

describe('half-open LISTEN connection', () => {
  test('messages published meanwhile still reach the frozen instance, once each, in order', async () => {
    const url = new URL(await freshDatabase());
    const proxy = await startTcpProxy(Number(url.port));
    afterAll(() => proxy.close());
    const viaProxy = new URL(url);
    viaProxy.port = String(proxy.port);

    // A talks to Postgres directly; B through the proxy, with a 1 s heartbeat.
    const { instances: [A] } = await startCluster(['bun'], { databaseUrl: url.toString() });
    const { instances: [B] } = await startCluster(['bun'], { databaseUrl: viaProxy.toString(), env: { MESH_HEARTBEAT: '1s', MESH_INSTANCE_ID: 'B' } });
    const sub = await B!.login('ho-1');
    await sub.request({ op: 'subscribe', args: ['room_ho'] });

    expect((await A!.publish({ c: 'room_ho', d: 'ho-0' })).status).toBe(200);
    expect(await sub.next((f) => f === 'ho-0')).toBe('ho-0');

    // Every socket B has to Postgres now hangs silently (its pool's and its LISTEN session's).
    expect(proxy.freezeOpenConnections()).toBeGreaterThanOrEqual(2);
    for (let i = 1; i <= 50; i++) expect((await A!.publish({ c: 'room_ho', d: `ho-${i}` })).status).toBe(200);

    const got = await collect(sub, 51, (f) => typeof f === 'string' && f.startsWith('ho-'), 30_000);
    expect(got).toEqual(Array.from({ length: 51 }, (_, i) => `ho-${i}`));
  }, 60_000);
});
