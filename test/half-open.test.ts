/**
 * A half-open LISTEN socket: the link to Postgres goes silent without closing.
 * The heartbeat notices, the instance polls and reconnects by itself, and its
 * subscribers miss nothing. And a presence subscribe that cannot write its
 * watch while the database is away fails, rather than promising a list it
 * cannot keep.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createServer } from 'node:net';
import postgres from 'postgres';
import { collect, startCluster } from './harness/cluster.ts';
import { pollUntil } from './harness/waiter.ts';
import { freshDatabase } from './harness/postgres.ts';
import { startTcpProxy } from './harness/tcp-proxy.ts';

/** A fresh database, and a proxy to it (closed after the file): its URL, and the URL through the proxy. */
async function databaseBehindProxy() {
  const url = new URL(await freshDatabase());
  const proxy = await startTcpProxy(Number(url.port));
  afterAll(() => proxy.close());
  const viaProxy = new URL(url);
  viaProxy.port = String(proxy.port);
  return { url, proxy, viaProxy };
}

describe('half-open LISTEN connection', () => {
  test('messages published meanwhile still reach the frozen instance, once each, in order', async () => {
    const { url, proxy, viaProxy } = await databaseBehindProxy();

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

  test('a presence subscribe while the database is away fails with ERR_UNAVAILABLE, the connection stays usable, and the subscribe works once it is back', async () => {
    const { url, proxy, viaProxy } = await databaseBehindProxy();
    const { instances: [W] } = await startCluster(['bun'], { databaseUrl: viaProxy.toString(), env: { MESH_HEARTBEAT: '1s', MESH_INSTANCE_ID: 'W' } });
    const watcher = await W!.login('away-1');

    // Away: every open socket silent, every new one refused (a port nothing listens on).
    const nowhere = createServer();
    await new Promise<void>((resolve) => nowhere.listen(0, '127.0.0.1', resolve));
    const deadPort = (nowhere.address() as { port: number }).port;
    await new Promise<void>((resolve) => nowhere.close(() => resolve()));
    proxy.retarget(deadPort);
    proxy.freezeOpenConnections();
    // Without its watch written, joins meanwhile might go unwritten: no member list is promised.
    expect(await watcher.request({ op: 'subscribe', channel: 'room_away', presence: true }, 30_000)).toMatchObject({ success: false, code: 30, reason: 'ERR_UNAVAILABLE' });
    expect(await watcher.request({ op: 'ping' })).toMatchObject({ op: 'pong' });

    proxy.retarget(Number(url.port));
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      await pollUntil(async () => (await watcher.request({ op: 'subscribe', channel: 'room_away', presence: true }, 30_000)).success === true, 20_000, 'a presence subscribe answered once the database is back');
      expect((await sql`select channel from mesh_subscription order by channel`).map((r) => r.channel)).toEqual(['$presence:room_away', 'room_away']);
      await watcher.request({ op: 'unsubscribe', channel: 'room_away' });
      await pollUntil(async () => (await sql`select channel from mesh_subscription`).length === 0, 20_000, 'the watch and the subscription gone');
    } finally {
      await sql.end();
    }
  }, 90_000);
});
