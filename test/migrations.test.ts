/** Migrations: applied once, and a database migrated by a newer pgmesh is refused on both stores. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlDriver } from '../src/store/driver.ts';
import { openPglite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { SCHEMA_VERSION } from '../src/store/schema.ts';
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
