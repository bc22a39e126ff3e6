/** Migrations: applied once, and a database migrated by a newer pgmesh is refused on both stores. */
import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlDriver } from '../src/store/driver.ts';
import { openPglite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { FUNCTIONS_DIGEST, FUNCTIONS_SQL, MIGRATIONS, SCHEMA_VERSION } from '../src/store/schema.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { freshDatabase } from './harness/postgres.ts';

/** Opens the same database again and again, as successive processes would. */
const databases: [string, () => Promise<() => Promise<SqlDriver>>][] = [
  ['pglite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-migrate-'));
    return () => openPglite(dir);
  }],
  ['postgres', async () => {
    const url = await freshDatabase();
    return () => openPostgres(url);
  }],
];

describe.each(databases)('migrations on %s', (_name, database) => {
  test('a second start applies nothing again; a newer schema is refused with a clear error', async () => {
    const open = await database();
    const first = await open();
    const store = new SqlStore(first, { retentionMs: 60_000 });
    await store.start();
    await store.close();

    const again = await open();
    const second = new SqlStore(again, { retentionMs: 60_000 });
    await second.start();
    expect((await again.query('select version from mesh_schema order by version')).map((r) => Number(r.version))).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
    );
    await again.query('insert into mesh_schema (version) values (99)');
    await second.close();

    const newer = new SqlStore(await open(), { retentionMs: 60_000 });
    await expect(newer.start()).rejects.toThrow(`database schema is version 99, newer than this pgmesh knows (${SCHEMA_VERSION}): upgrade pgmesh`);
    await newer.close();
  }, 60_000);
});

describe.each(databases)('the functions on %s', (_name, database) => {
  test('a database at version 8 (orphaned subscriptions, a webhook queue) comes out of version 9 with every function, the backlog counted and no orphan', async () => {
    const open = await database();
    const db = await open();
    await db.exec('create table mesh_schema (version int4 not null)');
    for (const m of MIGRATIONS.filter((m) => m.version <= 8)) {
      await db.exec(m.sql);
      await db.query('insert into mesh_schema (version) values ($1::int4)', [m.version]);
    }
    await db.exec(`
      insert into mesh_instance (id) values ('i1');
      insert into mesh_connection (id, instance, uid, transport, connected_at) values ('i1.live', 'i1', 'ann', 'websocket', now());
      insert into mesh_subscription (connection, channel, uid) values ('i1.live', 'room', 'ann'), ('i1.gone', 'room', 'bob');
      insert into mesh_webhook (target, event) values ('', '{}'), ('', '{}'), ('pusher:1', '{}');`);
    const store = new SqlStore(db, { retentionMs: 60_000 });
    await store.start();
    const functions = await db.query(`select p.proname as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = current_schema() and p.proname like 'mesh%' order by 1`);
    expect(functions.map((r) => r.name)).toEqual(['mesh_cluster_apply', 'mesh_publish', 'mesh_publish', 'mesh_webhook_added', 'mesh_webhook_removed']);
    expect(await db.query('select connection from mesh_subscription')).toEqual([{ connection: 'i1.live' }]);
    expect(await db.query('select target, pending::int as pending from mesh_webhook_backlog order by target')).toEqual([
      { target: '', pending: 2 },
      { target: 'pusher:1', pending: 1 },
    ]);
    // From here the triggers keep the count.
    await db.exec(`insert into mesh_webhook (target, event) values ('pusher:1', '{}'), ('pusher:2', '{}'); delete from mesh_webhook where target = '';`);
    expect(await db.query('select target, pending::int as pending from mesh_webhook_backlog order by target')).toEqual([
      { target: '', pending: 0 },
      { target: 'pusher:1', pending: 2 },
      { target: 'pusher:2', pending: 1 },
    ]);
    await store.close();
  }, 60_000);
});

// A database runs the functions of the last migration that installed them: a function edited
// without a migration installing it again would reach new databases only.
test('the functions are those the latest migration installs (FUNCTIONS_DIGEST)', () => {
  const digest = createHash('sha256').update(FUNCTIONS_SQL).digest('hex');
  if (digest !== FUNCTIONS_DIGEST) {
    throw new Error(`src/store/functions/ changed (digest ${digest}): add a migration ending in "+ installFunctions()", then set FUNCTIONS_DIGEST to the new digest`);
  }
});
