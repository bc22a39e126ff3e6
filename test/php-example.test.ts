/**
 * The PHP examples, run by the real PHP CLI: publish.php (curl to the server API)
 * and order.php (mesh_publish() inside a PDO transaction on the shared Postgres).
 */
import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { startTestMesh } from './harness/mesh.ts';
import { freshDatabase } from './harness/postgres.ts';
import { hasPhp, runPhp } from './harness/php.ts';

const KEY = 'php-example-key-0123456789';
const mesh = await startTestMesh({ MESH_API_KEY: KEY });
const SCRIPT = join(import.meta.dir, '..', 'examples', 'php', 'publish.php');

/** Runs an example script against the test server. */
function php(args: string[], key: string, script = SCRIPT, env: Record<string, string> = {}) {
  return runPhp(script, args, { MESH_URL: mesh.url, MESH_API_KEY: key, ...env });
}

describe.skipIf(!hasPhp)('PHP example', () => {
  test('publish.php sends to user:<uid> and the client gets the d string', async () => {
    const client = await mesh.login('1001');
    await client.request({ op: 'subscribe', channel: '@user' });
    const run = await php(['1001', 'Hello,World!'], KEY);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^published as id \d+\n$/);
    const frame = await client.next((f) => typeof f === 'object' && f.event === '@user');
    expect(client.texts.at(-1)).toBe('{"event":"@user","data":{"uid":1001,"msg":"Hello,World!"}}');
    expect(frame).toEqual({ event: '@user', data: { uid: 1001, msg: 'Hello,World!' } });
  });

  test('a wrong key makes publish.php fail loudly', async () => {
    const run = await php([], 'wrong-key-0123456789abcdef');
    expect(run.status).not.toBe(0);
    expect(run.stderr + run.stdout).toContain('pgmesh publish failed (401)');
  });

  test('order.php: mesh_publish() in a rolled-back PDO transaction delivers nothing, in a committed one it is delivered', async () => {
    const databaseUrl = await freshDatabase();
    const withPg = await startTestMesh({ DATABASE_URL: databaseUrl });
    const client = await withPg.login('1001');
    await client.request({ op: 'subscribe', channel: '@user' });
    const order = join(import.meta.dir, '..', 'examples', 'php', 'order.php');
    const failed = await php(['1001', '--fail'], KEY, order, { DATABASE_URL: databaseUrl });
    expect(failed.stdout).toBe('rolled back: payment declined\n');
    const ok = await php(['1001'], KEY, order, { DATABASE_URL: databaseUrl });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('committed\n');
    const frame = await client.next((f) => typeof f === 'object' && f.event === 'order');
    expect(frame).toEqual({ event: 'order', data: { status: 'paid' } });
    expect(client.texts.filter((t) => t.includes('"order"'))).toHaveLength(1);
  });
});
