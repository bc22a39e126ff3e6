/**
 * However `npm start` is stopped — Ctrl-C in a terminal (SIGINT to the whole process group), SIGTERM
 * to npm alone (`docker stop` with npm as PID 1), npm killed outright, or SIGTERM to every process
 * (systemd's default KillMode) — the server drains (its clients get 1012, not 1006), its embedded
 * Postgres stays up until the drain is done and then stops, and no process is left behind.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect as tcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLines, startProcess } from './harness/process.ts';
import { token } from './harness/tokens.ts';
import { connect } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';

/** Whether something still accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcp(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

const ways: [string, (npm: number, postgres: number) => void][] = [
  ['Ctrl-C in a terminal: SIGINT to the whole group', (npm) => process.kill(-npm, 'SIGINT')],
  ['SIGTERM to npm alone (docker stop with npm as PID 1)', (npm) => process.kill(npm, 'SIGTERM')],
  ['npm killed outright (SIGKILL)', (npm) => process.kill(npm, 'SIGKILL')],
  [
    "SIGTERM to every process, Postgres too (systemd's default KillMode)",
    (npm, postgres) => {
      process.kill(-npm, 'SIGTERM');
      process.kill(postgres, 'SIGTERM');
    },
  ],
];

describe('stopping npm start', () => {
  for (const [way, stop] of ways) {
    test(`${way}: the clients get 1012, the database outlives the drain, nothing is left running`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'pgmesh-signal-'));
      const postmaster = join(dataDir, 'postgres', 'postmaster.pid');
      const mesh = await startProcess('node', { MESH_DATA_DIR: dataDir, MESH_DRAIN_TIME: '300ms', MESH_LOG: 'info' }, 60_000, ['npm', 'start', '--silent']);
      try {
        const client = await connect(`${mesh.url.replace('http', 'ws')}/v1/ws`);
        expect(await client.request({ op: 'auth', token: await token('signal-1') })).toMatchObject({ success: true });
        const postgres = Number(readFileSync(postmaster, 'utf8').split('\n')[0]);
        stop(mesh.child.pid!, postgres);
        expect((await client.closed).code).toBe(1012);
        // The server and its database are gone: nothing answers on the port, and Postgres removed its pid file.
        await pollUntil(async () => !(await listening(mesh.port)), 15_000, 'the server gone');
        await pollUntil(async () => !existsSync(postmaster), 15_000, 'the embedded Postgres stopped');
        const lines = logLines(mesh.stderr());
        expect(lines.some((l) => l.msg === 'shutting down: draining')).toBe(true);
        // The database was there for the whole drain.
        expect(lines.filter((l) => l.level === 'error' || l.msg === 'database failing')).toEqual([]);
      } finally {
        // Whatever failed above, nothing of this test keeps running (the group may be gone already).
        try {
          process.kill(-mesh.child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }, 90_000);
  }
});
