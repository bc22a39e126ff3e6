/**
 * A publish whose answer is lost — the statement reached Postgres, the reply never
 * came back — is not reported as failed: the store finds out whether it committed.
 * And one whose statement never arrived is reported as not stored. Postgres is
 * reached through a TCP proxy that can silence a connection.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { openPostgres } from '../src/store/postgres.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { freshDatabase } from './harness/postgres.ts';
import { startTcpProxy } from './harness/tcp-proxy.ts';

async function storeBehindProxy() {
  const url = new URL(await freshDatabase());
  const proxy = await startTcpProxy(Number(url.port));
  const viaProxy = new URL(url);
  viaProxy.port = String(proxy.port);
  const store = new SqlStore(await openPostgres(viaProxy.toString(), { heartbeatMs: 60_000 }), { retentionMs: 3_600_000, resolveBudgetMs: 20_000 });
  await store.start();
  const direct = postgres(url.toString(), { max: 1, onnotice: () => {} });
  afterAll(async () => {
    await store.close().catch(() => {});
    await direct.end();
    await proxy.close();
  });
  return { store, proxy, direct };
}

describe('a publish whose answer is lost', () => {
  test('committed but unanswered: the publish resolves with its ids, stored once', async () => {
    const { store, proxy, direct } = await storeBehindProxy();
    // Every pooled connection has the publish statement prepared (postgres.js takes them in turn),
    // so the next one is sent whole — parse and execute — and runs before its answer is lost.
    for (let i = 0; i < 16; i++) await store.publish([{ channel: 'warm', data: String(i), sender: null }]);
    expect(proxy.dropRepliesOnOpenConnections()).toBeGreaterThan(0);
    const ids = await store.publish([
      { channel: 'room_lost', data: 'one', sender: null },
      { channel: 'room_lost', data: 'two', sender: null },
    ]);
    expect(ids).toHaveLength(2);
    const rows = await direct`select id, data from mesh_message where channel = 'room_lost' order by id`;
    expect(rows.map((r) => [Number(r.id), r.data])).toEqual([
      [ids[0], 'one'],
      [ids[1], 'two'],
    ]);
  }, 60_000);

  test('never arrived: reported as not stored (ERR_UNAVAILABLE), and nothing is', async () => {
    const { store, proxy, direct } = await storeBehindProxy();
    await store.publish([{ channel: 'warm', data: 'up', sender: null }]);
    expect(proxy.freezeOpenConnections()).toBeGreaterThan(0);
    await expect(store.publish([{ channel: 'room_never', data: 'x', sender: null }])).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE' });
    const rows = await direct`select count(*)::int as n from mesh_message where channel = 'room_never'`;
    expect(rows[0]!.n).toBe(0);
  }, 60_000);
});
