/** The test harness cleans up after itself: a failing test file leaves no Postgres server running. */
import { describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BIN, ROOT } from './harness/process.ts';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });
}

describe.skipIf(process.env.TEST_DATABASE_URL !== undefined)('the embedded Postgres of the harness', () => {
  test('is stopped when a test file that started it fails', async () => {
    const child = spawn(join(BIN, 'bun'), ['test', './test/fixtures/fails-with-postgres.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    const port = Number(/ADMIN_URL postgres:\/\/[^@]+@127\.0\.0\.1:(\d+)\//.exec(out)?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(await refused(port)).toBe(true);
  }, 60_000);
});
