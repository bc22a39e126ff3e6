/**
 * The deploy files say what the server does: fly.toml's ports, checks, drain
 * time and metrics agree with the settings, and the Dockerfile's production
 * install (npm ci --omit=dev, in a clean copy holding only what the image
 * copies) starts and serves exactly as the image's CMD runs it.
 */
import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { BIN, logLines, startProcess } from './harness/process.ts';

const root = join(import.meta.dir, '..');
const fly = Bun.TOML.parse(readFileSync(join(root, 'fly.toml'), 'utf8')) as Record<string, any>;

/** The Dockerfile's instructions of the final stage: ENV pairs, COPY sources, CMD, and the deps stage's RUN. */
function dockerfile() {
  const lines = readFileSync(join(root, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const stages = lines.map((l, i) => (l.startsWith('FROM ') ? i : -1)).filter((i) => i >= 0);
  const final = lines.slice(stages.at(-1));
  const env: Record<string, string> = {};
  for (const l of final.filter((x) => x.startsWith('ENV '))) for (const [, k, v] of l.slice(4).matchAll(/(\w+)=(\S+)/g)) env[k!] = v!;
  return {
    env,
    copies: final.filter((l) => l.startsWith('COPY ') && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1)),
    fromDeps: final.filter((l) => l.startsWith('COPY --from')).map((l) => l.split(/\s+/)[2]),
    cmd: JSON.parse(final.find((l) => l.startsWith('CMD '))!.slice(4)) as string[],
    install: lines.find((l) => l.startsWith('RUN npm '))!.slice(4),
  };
}

describe('fly.toml', () => {
  const defaults = loadConfig({});
  const settings = loadConfig(fly.env);

  test('serves the port the server listens on, and scrapes the metrics port it opens', () => {
    expect(fly.http_service.internal_port).toBe(settings.PORT);
    expect(fly.metrics).toEqual({ port: settings.MESH_METRICS_PORT, path: '/metrics' });
    expect(fly.metrics.port).not.toBe(fly.http_service.internal_port);
  });

  test('serves the publish port on every address, the private network\'s IPv6 too, and on no public service', () => {
    expect(settings.HOST).toBe('::');
    expect(settings.MESH_PUBLISH_PORT).toBeGreaterThan(0);
    expect([fly.http_service.internal_port, fly.metrics.port]).not.toContain(settings.MESH_PUBLISH_PORT);
    expect(JSON.stringify(fly.services ?? [])).not.toContain(String(settings.MESH_PUBLISH_PORT));
  });

  test('checks /readyz, counts connections, never stops a machine with clients, deploys one machine at a time', () => {
    expect(fly.http_service.checks).toContainEqual(expect.objectContaining({ method: 'GET', path: '/readyz' }));
    expect(fly.http_service.concurrency.type).toBe('connections');
    expect(fly.http_service.concurrency.soft_limit).toBeLessThan(fly.http_service.concurrency.hard_limit);
    expect(fly.http_service.auto_stop_machines).toBe('off');
    expect(fly.deploy.strategy).toBe('rolling');
  });

  test("keeps idle streams: the proxy's idle timeout is well above the SSE heartbeat", () => {
    expect(fly.http_service.http_options.idle_timeout * 1000).toBeGreaterThanOrEqual(4 * settings.MESH_SSE_HEARTBEAT);
  });

  test('lets the drain finish: the kill signal is one the server drains on, and kill_timeout outlasts MESH_DRAIN_TIME', () => {
    expect(['SIGINT', 'SIGTERM']).toContain(fly.kill_signal);
    // The drain, then closing the store (a few seconds at most).
    expect(fly.kill_timeout * 1000).toBeGreaterThanOrEqual(settings.MESH_DRAIN_TIME + 10_000);
    expect(settings.MESH_DRAIN_TIME).toBe(defaults.MESH_DRAIN_TIME);
    expect(settings.MESH_LOG_FORMAT).toBe('json');
  });
});

describe('Dockerfile', () => {
  test('a production install in a clean copy starts as the image runs it, publishes, serves metrics, and drains on SIGTERM', async () => {
    const image = dockerfile();
    expect(image.install).toContain('npm ci --omit=dev');
    expect(image.fromDeps).toEqual(['/app/node_modules']);
    const app = mkdtempSync(join(tmpdir(), 'pgmesh-image-'));
    try {
      for (const source of ['package.json', 'package-lock.json', ...image.copies]) cpSync(join(root, source), join(app, source), { recursive: true });
      const install = spawnSync('sh', ['-c', image.install], { cwd: app, encoding: 'utf8', timeout: 300_000 });
      expect(install.status, install.stderr).toBe(0);
      const [program, ...args] = image.cmd;
      expect(program).toBe('bun'); // the image is oven/bun: ours comes from the dev install
      const env = { ...image.env, PORT: '0', HOST: '127.0.0.1', MESH_DATA_DIR: join(app, 'data'), MESH_METRICS_PORT: '0', MESH_PUBLISH_PORT: '0', MESH_LOG: 'info' };
      const mesh = await startProcess('bun', env, 120_000, [join(BIN, 'bun'), ...args], app);
      // On the main port, and on the publish thread (fly.toml sets MESH_PUBLISH_PORT), which starts from the image's files too.
      for (const origin of [mesh.url, mesh.publishOrigin!]) {
        const published = await fetch(`${origin}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'image', d: 'hello' }) });
        expect(published.status).toBe(200);
      }
      expect((await fetch(`${mesh.url}/readyz`)).status).toBe(200);
      const started = logLines(mesh.stderr()).find((line) => line.msg === 'started')!;
      expect(started.store).toContain('embedded Postgres');
      const metrics = await (await fetch(`http://127.0.0.1:${started.metricsPort}/metrics`)).text();
      expect(metrics).toContain('pgmesh_messages_published_total');
      expect(await mesh.stop('SIGTERM')).toBe(0);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  }, 400_000);
});
