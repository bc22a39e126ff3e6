/**
 * docs/reverse-proxy.md's nginx configuration, as printed, in a real nginx in
 * front of pgmesh: a WebSocket is upgraded, an SSE stream and a Mercure stream
 * get each event as it is published (nothing buffered). nginx is a system
 * package: where it is missing the test says so and is skipped, except under
 * PGMESH_REQUIRE_PHP=1 (.ci/run), which installs it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startTestMesh, type TestMesh } from './harness/mesh.ts';
import { ROOT } from './harness/process.ts';
import { token } from './harness/tokens.ts';
import { connect } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';

const hasNginx = spawnSync('nginx', ['-v']).status === 0;
if (!hasNginx) {
  if (process.env.PGMESH_REQUIRE_PHP === '1') throw new Error('PGMESH_REQUIRE_PHP=1 but nginx is missing: apt-get install -y nginx-light');
  console.warn('reverse-proxy tests skipped: no nginx here (apt-get install -y nginx-light)');
}

const page = readFileSync(join(ROOT, 'docs', 'reverse-proxy.md'), 'utf8');
const printed = /```nginx\n([\s\S]*?)```/.exec(page)![1]!;
const KEY = 'reverse-proxy-mercure-key-0123';

/** A free TCP port on loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe.skipIf(!hasNginx)('nginx in front, configured as docs/reverse-proxy.md says', () => {
  // Set up in beforeAll, not in the describe's body: bun runs the body of a skipped describe too, and
  // spawning an nginx that is not there ended a run without it in an unhandled error.
  let mesh: TestMesh;
  let nginx: ChildProcess | undefined;
  let base = '';
  beforeAll(async () => {
    mesh = await startTestMesh({ MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_ANONYMOUS: '1', MESH_TRUSTED_PROXIES: '127.0.0.1' }, { stopAfterAll: false });
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-nginx-'));
    const server = printed.replace('server 127.0.0.1:8080;', `server 127.0.0.1:${mesh.port};`).replace('listen 80;', `listen 127.0.0.1:${port};`);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n${server}\n}\n`,
    );
    nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
    base = `http://127.0.0.1:${port}`;
    await pollUntil(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status === 200, 10_000, 'nginx answering');
  });
  afterAll(async () => {
    nginx?.kill('SIGQUIT');
    await mesh?.stop();
  });

  /** Reads a stream until `text` has come; throws if it ends first. */
  async function readUntil(response: Response, wanted: string): Promise<string> {
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes(wanted)) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`stream ended before "${wanted}": ${text}`);
      text += new TextDecoder().decode(chunk.value);
    }
    await reader.cancel();
    return text;
  }

  test('a WebSocket is upgraded and carries a publish', async () => {
    const client = await connect(`${base.replace('http', 'ws')}/v1/ws`);
    expect(await client.request({ op: 'auth', token: await token('proxied') })).toMatchObject({ success: true });
    expect(await client.request({ op: 'subscribe', channel: 'through-nginx' })).toMatchObject({ success: true });
    await mesh.publish({ c: 'through-nginx', d: 'hello through nginx' });
    await client.next((f) => f === 'hello through nginx');
    client.close();
  });

  test('an SSE stream gets each event as it is published, not when a buffer fills', async () => {
    const response = await fetch(`${base}/v1/sse?channel=sse-through-nginx&token=${await token('sse-proxied')}`);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    await mesh.publish({ c: 'sse-through-nginx', d: 'one small event' });
    expect(await readUntil(response, 'one small event')).toContain('data: one small event');
  });

  test('a Mercure stream likewise', async () => {
    const response = await fetch(`${base}/.well-known/mercure?topic=proxied-topic`);
    const jwt = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
    const published = await fetch(`${base}/.well-known/mercure`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'topic=proxied-topic&data=via+nginx' });
    expect(published.status).toBe(200);
    expect(await readUntil(response, 'via nginx')).toContain('data: via nginx');
  });
});
