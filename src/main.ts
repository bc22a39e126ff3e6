/**
 * Entry point on every runtime (`npm start`, `bun src/main.ts`, `deno task start`):
 * read the settings, start the instance, drain on SIGINT/SIGTERM, or when the
 * package manager that launched it goes.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from './config.ts';
import { loadRuntime } from './runtime/detect.ts';
import { startMesh, type RunningMesh } from './server.ts';

/** How often a server started by a package manager looks for its launcher. */
const LAUNCHER_CHECK_MS = 500;

/** Drains once, whatever asked first (a signal, the launcher's death), then exits. */
function shutdownOnce(mesh: RunningMesh): (why: Record<string, unknown>) => void {
  let draining = false;
  return (why) => {
    if (draining) return;
    draining = true;
    mesh.log.info('shutting down: draining', why);
    void mesh
      .drain()
      .catch((err: unknown) => mesh.log.error('drain failed', { err }))
      .finally(() => process.exit(0));
  };
}

/** The package manager that launched us: npm runs a script through `sh -c`, so past a shell, the shell's parent (read from /proc where there is one). */
function launcherPid(): number {
  try {
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (['sh', 'dash', 'bash', 'zsh'].includes(command)) return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    // no /proc (macOS): the parent it is
  }
  return process.ppid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Started by a package manager's script (`npm start`: npm sets npm_lifecycle_event), the server drains
 * when its launcher goes: npm killed, or sent SIGTERM alone (it exits without passing it on), would
 * otherwise leave the server and its embedded Postgres running, orphaned. Run directly, the server may
 * be daemonised on purpose: its parent is then nobody's business.
 */
function watchLauncher(shutdown: (why: Record<string, unknown>) => void): void {
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const launcher = launcherPid();
  const timer = setInterval(() => {
    if (process.ppid === parent && alive(launcher)) return;
    clearInterval(timer);
    shutdown({ launcher, gone: true });
  }, LAUNCHER_CHECK_MS);
  timer.unref?.();
}

try {
  const config = loadConfig(process.env);
  const runtime = await loadRuntime();
  const mesh = await startMesh(config, { runtime });
  // A bug on one connection's path must not end everyone's: logged and counted, and the process goes on.
  runtime.onUncaught((kind, err) => {
    mesh.metrics.uncaught(kind);
    mesh.log.error(kind === 'rejection' ? 'unhandled rejection' : 'uncaught exception', { err });
  });
  // Before the "listening" line: a signal sent as soon as it appears must find the drain in place
  // (the default action would kill the process and orphan the embedded Postgres).
  const shutdown = shutdownOnce(mesh);
  runtime.onShutdownSignal((signal) => shutdown({ signal }));
  watchLauncher(shutdown);
  // The one line on stdout: tests and scripts read the port from it.
  const publishing = mesh.publishThread === null ? '' : `, publishing also on ${new URL(mesh.url).origin.replace(/:\d+$/, `:${mesh.publishThread.port}`)}`;
  console.log(`pgmesh listening on ${mesh.url} (${mesh.runtime}, ${mesh.store.kind})${publishing}`);
} catch (err) {
  console.error(err instanceof ConfigError ? `pgmesh: ${err.message}` : `pgmesh: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
