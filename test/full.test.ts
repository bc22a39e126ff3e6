/**
 * Full is a state, not a crash: an instance at its connection capacity refuses
 * new realtime connections with 503 ERR_FULL and Retry-After, says "full" in
 * /readyz, counts the refusals and logs once, while /healthz, publishing and the
 * connected clients carry on; a connection that closes makes room again. The
 * capacity comes from MESH_MAX_CONNECTIONS, or from the open-file limit the
 * process was started with, on every runtime.
 */
import { describe, expect, test } from 'bun:test';
import { RUNTIMES, ROOT, command, logLines, startProcess } from './harness/process.ts';
import { rawWebSocket } from './harness/raw-ws.ts';
import { token } from './harness/tokens.ts';
import { connect, type WsClient } from './harness/ws-client.ts';

describe('an instance at its capacity (MESH_MAX_CONNECTIONS=5)', () => {
  test('refuses the sixth realtime connection with 503 ERR_FULL and Retry-After, says full in /readyz, and serves everything else', async () => {
    const mesh = await startProcess('node', { MESH_MAX_CONNECTIONS: '5', MERCURE_PUBLISHER_JWT_KEY: 'full-test-mercure-key-0123', MERCURE_ANONYMOUS: '1', MESH_LOG: 'info' });
    const clients: WsClient[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const client = await connect(`${mesh.url.replace('http', 'ws')}/v1/ws`);
        expect(await client.request({ op: 'auth', token: await token(`full-${i}`) })).toMatchObject({ success: true });
        clients.push(client);
      }
      expect(await clients[0]!.request({ op: 'subscribe', channel: 'still-served' })).toMatchObject({ success: true });

      // A WebSocket upgrade, an SSE stream and a Mercure subscriber are all refused before anything is opened.
      await expect(rawWebSocket(mesh.port, '/v1/ws')).rejects.toThrow('503');
      for (const path of [`/v1/sse?token=${await token('full-sse')}`, '/.well-known/mercure?topic=x']) {
        const refused = await fetch(`${mesh.url}${path}`);
        expect(refused.status).toBe(503);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(2);
        expect(await refused.json()).toMatchObject({ code: 'ERR_FULL' });
      }
      expect(await (await fetch(`${mesh.url}/readyz`)).json()).toEqual({ ready: false, reasons: ['full'], code: 'ERR_FULL' });
      expect((await fetch(`${mesh.url}/healthz`)).status).toBe(200);
      // Publishing and delivery to the connected go on.
      const published = await fetch(`${mesh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'still-served', d: 'yes' }) });
      expect(published.status).toBe(200);
      await clients[0]!.next((f) => f === 'yes');
      const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
      expect(Number(/^pgmesh_limit_refusals_total\{[^}]*limit="full"[^}]*\} (\d+)/m.exec(metrics)?.[1])).toBe(3);
      expect(logLines(mesh.stderr()).filter((l) => l.msg.startsWith('full:'))).toHaveLength(1);

      // One leaves: there is room again.
      clients.pop()!.close();
      let again: WsClient | undefined;
      for (let tries = 0; again === undefined && tries < 50; tries++) {
        again = await connect(`${mesh.url.replace('http', 'ws')}/v1/ws`).catch(() => undefined);
        if (again === undefined) await (await fetch(`${mesh.url}/readyz`)).text();
      }
      expect(again).toBeDefined();
      clients.push(again!);
      expect(logLines(mesh.stderr()).some((l) => l.msg === 'taking new realtime connections again')).toBe(true);
    } finally {
      for (const c of clients) c.close();
      await mesh.stop();
    }
  }, 60_000);
});

describe.each(RUNTIMES)('the capacity from the open-file limit, on %s', (runtime) => {
  test('started under `ulimit -n 400`, it takes 336 connections (400 less a reserve of 64) and says so', async () => {
    const mesh = await startProcess(runtime, { MESH_LOG: 'info' }, 60_000, ['sh', '-c', `ulimit -n 400 && exec ${command(runtime).map((a) => `'${a}'`).join(' ')}`], ROOT);
    try {
      const stats = (await (await fetch(`${mesh.url}/v1/mesh/stats`)).json()) as { capacity: unknown };
      expect(stats.capacity).toEqual({ limit: 336, source: 'open-file limit' });
      expect(logLines(mesh.stderr()).find((l) => l.msg === 'connection capacity')).toMatchObject({ limit: 336, source: 'open-file limit' });
    } finally {
      await mesh.stop();
    }
  }, 60_000);
});
