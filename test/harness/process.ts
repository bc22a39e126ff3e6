/**
 * Runs pgmesh as a separate process under node, bun or deno (all three from
 * node_modules/.bin), and waits for its "listening on" line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_SECRET } from './tokens.ts';

export type RuntimeName = 'node' | 'bun' | 'deno';
export const RUNTIMES: RuntimeName[] = ['node', 'bun', 'deno'];
export { BIN };

// Portable (node runs this too, for the benchmarks): no Bun-only import.meta.dir.
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'node_modules', '.bin');

/** V8 flags `npm start` gives Node (package.json): a young generation sized for a server's garbage, see docs/performance.md. */
export const NODE_FLAGS = ['--max-semi-space-size=32'];

/** The command line that runs src/main.ts on a runtime. */
export function command(runtime: RuntimeName): string[] {
  const main = join(ROOT, 'src', 'main.ts');
  if (runtime === 'node') return ['node', ...NODE_FLAGS, '--import', 'tsx', main];
  if (runtime === 'bun') return [join(BIN, 'bun'), main];
  return [join(BIN, 'deno'), 'run', '-A', main];
}

/** One line of an instance's log (MESH_LOG_FORMAT=json when not in a terminal). */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  instance: string;
  region?: string;
  [field: string]: unknown;
}

/** The JSON log lines of a stderr capture (other lines, from a runtime itself, are left out). */
export function logLines(stderr: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

export interface MeshProcess {
  url: string;
  port: number;
  /** The publish thread's origin (MESH_PUBLISH_PORT), when it has one. */
  publishOrigin?: string;
  child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Sends a signal and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

// Every server this test process started and has not seen exit: a test that fails (or forgets) before
// stopping one must not leave it running after the run, holding sessions on the shared Postgres.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Longer than a drain (MESH_DRAIN_TIME, 10 s by default) and its shutdown; shorter than a test's timeout (30 s). */
const STOP_DEADLINE_MS = 20_000;

/**
 * Resolves with the exit code once the process is gone; past `ms` it is killed and this rejects. A
 * server whose stop hangs must not outlive the run: bun ends a file whose afterAll timed out without
 * an 'exit' event, so the net above never ran, and such servers were left behind.
 */
async function exitedWithin(child: ChildProcess, exited: Promise<number | null>, ms: number, group: boolean): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, ms, 'late')));
  const first = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (first !== 'late') return first;
  // A wrapper's group (npm, deno task) goes whole: the server is its child.
  if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  else child.kill('SIGKILL');
  await exited;
  throw new Error(`the process did not exit within ${ms} ms of its stop signal: killed`);
}

/** Starts pgmesh on `runtime` (or with an explicit command line, run in `cwd`) with `env` on a free port. */
export function startProcess(runtime: RuntimeName, env: Record<string, string> = {}, timeoutMs = 60_000, commandLine?: string[], cwd = ROOT): Promise<MeshProcess> {
  const [cmd, ...args] = commandLine ?? command(runtime);
  const child = spawn(cmd!, args, {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, MESH_DATA_DIR: 'memory://', MESH_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A wrapper (npm, deno task) runs the server as its child: a group of their own lets the test end both.
    detached: commandLine !== undefined,
  });
  running.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${runtime}: no "listening" line within ${timeoutMs} ms\n${err}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${runtime}: exited with ${code} before listening\n${err}`));
    });
    child.stdout!.on('data', (d) => {
      out += d;
      const match = /listening on (http:\/\/[^\s]+:(\d+))[^\n]*\n/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      resolve({
        url: match[1]!,
        port: Number(match[2]),
        publishOrigin: /publishing also on (http:\/\/\S+)/.exec(match[0])?.[1],
        child,
        stderr: () => err,
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null) child.kill(signal);
          return exitedWithin(child, exited, STOP_DEADLINE_MS, commandLine !== undefined);
        },
      });
    });
  });
}

/** Runs pgmesh expecting it to refuse to start; resolves with its exit code and output. */
export function runToExit(runtime: RuntimeName, env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const [cmd, ...args] = command(runtime);
  const child = spawn(cmd!, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', MESH_DATA_DIR: 'memory://', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`did not exit within ${timeoutMs} ms: ${stdout}${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}
