/** Settings: defaults, units, and a bad value stopping the start with one line naming the setting. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../src/config.ts';
import { runToExit, startProcess } from './harness/process.ts';

describe('loadConfig', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 8080, MESH_DATA_DIR: './.pgmesh', MESH_WS_PATHS: [], MESH_RETENTION: 86_400_000, MESH_MAX_FRAME: 65_536, MESH_MAX_MESSAGE: 1_048_576 });
    expect(c.DATABASE_URL).toBeUndefined();
  });

  test('units and lists', () => {
    const c = loadConfig({ MESH_RETENTION: '90m', MESH_MAX_FRAME: '128k', MESH_MAX_MESSAGE: '2m', MESH_WS_PATHS: '/chat, /message-center', PORT: '9000' });
    expect(c).toMatchObject({ MESH_RETENTION: 5_400_000, MESH_MAX_FRAME: 131_072, MESH_MAX_MESSAGE: 2_097_152, MESH_WS_PATHS: ['/chat', '/message-center'], PORT: 9000 });
  });

  test('an empty value counts as unset', () => {
    expect(loadConfig({ PORT: '', JWT_SECRET: '' }).PORT).toBe(8080);
  });

  const bad: [string, string][] = [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'not a url'],
    ['JWT_SECRET', 'short'],
    ['JWKS_URL', 'keys.json'],
    ['MESH_RETENTION', 'forever'],
    ['MESH_MAX_FRAME', '64 parsecs'],
    ['MESH_WS_PATHS', 'chat'],
    ['MESH_API_KEY', 'abc'],
    ['MESH_LOG', 'loud'],
    ['PUSHER_APPS', '1001:key-only'],
    ['PUSHER_WEBHOOKS', '1001=not a url'],
    ['PUSHER_WEBHOOKS', 'https://app.example.com/hook'],
  ];
  test("PUSHER_WEBHOOKS for an app that PUSHER_APPS does not name is refused; one for each app is read", () => {
    const apps = '1001:key-one:secret-one-0123,1002:key-two:secret-two-0123';
    expect(() => loadConfig({ PUSHER_APPS: apps, PUSHER_WEBHOOKS: '1003=https://app.example.com/hook' })).toThrow(/^invalid setting PUSHER_WEBHOOKS: app 1003 is not in PUSHER_APPS$/);
    expect(() => loadConfig({ PUSHER_APPS: apps, PUSHER_WEBHOOKS: '1001=https://a.example/1,1001=https://a.example/2' })).toThrow(/^invalid setting PUSHER_WEBHOOKS: app 1001 has two webhook URLs$/);
    expect(loadConfig({ PUSHER_APPS: apps, PUSHER_WEBHOOKS: '1001=https://a.example/hook?x=1, 1002=http://10.0.0.5:8000/pusher' }).PUSHER_WEBHOOKS).toEqual({ '1001': 'https://a.example/hook?x=1', '1002': 'http://10.0.0.5:8000/pusher' });
  });

  for (const [key, value] of bad) {
    test(`${key}=${value} is refused, naming ${key}`, () => {
      expect(() => loadConfig({ [key]: value })).toThrow(ConfigError);
      expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(`^invalid setting ${key}: `));
    });
  }
});

describe('starting with a bad setting', () => {
  test('exits 1 with one line naming the setting', async () => {
    const { code, stderr, stdout } = await runToExit('node', { MESH_RETENTION: 'forever' });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual(['pgmesh: invalid setting MESH_RETENTION: "forever" is not a duration like 30s, 15m, 24h or 7d']);
  });
});

describe('the embedded store folder', () => {
  test('a second process on the same MESH_DATA_DIR is refused with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-lock-'));
    const first = await startProcess('bun', { MESH_DATA_DIR: dir });
    try {
      const second = await runToExit('bun', { MESH_DATA_DIR: dir });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`MESH_DATA_DIR ${dir} is in use by process ${first.child.pid}`);
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      await first.stop();
    }
    // Once the first has stopped, the folder can be opened again.
    const third = await startProcess('bun', { MESH_DATA_DIR: dir });
    await third.stop();
  }, 60_000);
});

describe('the embedded Postgres', () => {
  test('a server orphaned by a pgmesh that was SIGKILLed is stopped and replaced by the next start, data kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-orphan-'));
    const first = await startProcess('bun', { MESH_DATA_DIR: dir });
    const publish = (url: string, d: string) =>
      fetch(`${url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'room_orphan', d }) });
    const { id } = (await (await publish(first.url, 'before the kill')).json()) as { id: number };
    const orphan = Number(readFileSync(join(dir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    await first.stop('SIGKILL');
    // The server outlived its pgmesh.
    expect(() => process.kill(orphan, 0)).not.toThrow();
    const second = await startProcess('bun', { MESH_DATA_DIR: dir });
    try {
      expect(() => process.kill(orphan, 0)).toThrow();
      const history = (await (await fetch(`${second.url}/v1/mesh/channels/room_orphan/history`)).json()) as { messages: { id: number; data: string }[] };
      expect(history.messages).toEqual([{ id, data: 'before the kill' }]);
    } finally {
      await second.stop();
    }
  }, 60_000);
});
