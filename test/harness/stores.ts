/**
 * The two implementations every store-side contract suite runs over: embedded
 * PGlite, and a real Postgres server (a fresh database each). Each subject is a
 * started SqlStore (schema applied) and the SQL connection an application would
 * use on the same database.
 */
import { afterEach } from 'bun:test';
import { openPglite } from '../../src/store/pglite.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { SqlStore, type SqlStoreOptions } from '../../src/store/sql-store.ts';
import type { SqlDriver } from '../../src/store/driver.ts';
import { freshDatabase } from './postgres.ts';

const HOUR = 3_600_000;
/** MESH_MAX_MESSAGE of the stores under test, which mesh_publish() in SQL enforces too. */
export const MAX_MESSAGE = 4096;

export interface StoreSubject {
  store: SqlStore;
  /** Another connection to the same database, as the application's. */
  app: SqlDriver;
  /** The statements the store has sent through `query` so far. */
  statements(): number;
}

type Options = Partial<SqlStoreOptions>;
const opened: StoreSubject[] = [];

/** [name, open a subject] for describe.each; subjects are closed after each test. */
export const STORE_IMPLEMENTATIONS: [string, (options?: Options) => Promise<StoreSubject>][] = [
  [
    'pglite',
    async (options = {}) => {
      const db = counted(await openPglite('memory://'));
      return track({ store: new SqlStore(db, { retentionMs: HOUR, maxMessage: MAX_MESSAGE, ...options }), app: db, statements: db.statements }, false);
    },
  ],
  [
    'postgres',
    async (options = {}) => {
      const url = await freshDatabase();
      const app = await openPostgres(url);
      const db = counted(await openPostgres(url));
      return track({ store: new SqlStore(db, { retentionMs: HOUR, maxMessage: MAX_MESSAGE, ...options }), app, statements: db.statements }, true);
    },
  ],
];

/** The driver as it is, counting the statements sent through its `query`. */
function counted(db: SqlDriver): SqlDriver & { statements(): number } {
  let n = 0;
  const query: SqlDriver['query'] = (text, params) => {
    n++;
    return db.query(text, params);
  };
  const statements = () => n;
  return new Proxy(db, {
    get(target, key) {
      if (key === 'query') return query;
      if (key === 'statements') return statements;
      const value = Reflect.get(target, key) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as SqlDriver & { statements(): number };
}

const apps: SqlDriver[] = [];
function track(subject: StoreSubject, ownApp: boolean): StoreSubject {
  opened.push(subject);
  if (ownApp) apps.push(subject.app);
  return subject;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.store.close()));
  await Promise.all(apps.splice(0).map((c) => c.close()));
});

/** Opens a subject and starts its store. */
export async function startedSubject(open: (options?: Options) => Promise<StoreSubject>, options?: Options): Promise<StoreSubject> {
  const subject = await open(options);
  await subject.store.start();
  return subject;
}
