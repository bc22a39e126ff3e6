/**
 * What an operator sees, on every runtime: GET /metrics in Prometheus text
 * (on the main port behind the API guard, and keyless on MESH_METRICS_PORT),
 * JSON log lines naming the instance, region and connection, and the client's
 * real address behind Fly's proxy or a trusted proxy of one's own.
 */
import { describe, expect, test } from 'bun:test';
import type { Context } from 'hono';
import { clientAddressOf } from '../src/api/client-address.ts';
import type { RuntimeAdapter } from '../src/runtime/adapter.ts';
import { RUNTIMES, logLines, startProcess, type MeshProcess } from './harness/process.ts';
import { openSse } from './harness/sse-client.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';
import { connect, onChannel } from './harness/ws-client.ts';

/** Samples of a Prometheus text page: `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

/** The value of the sample `name` whose labels include every one of `labels`. */
function sample(all: Map<string, number>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const [key, value] of all) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) return value;
  }
  return undefined;
}

const scrape = async (url: string, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};

function metricsPortOf(mesh: MeshProcess): number {
  const started = logLines(mesh.stderr()).find((line) => line.msg === 'started');
  return started!.metricsPort as number;
}

describe.each(RUNTIMES)('operators on %s', (runtime) => {
  test(
    'metrics count connections, subscriptions, publishes, deliveries, commits, the backplane, cursors and errors; logs name each connection',
    async () => {
      const instance = `ops-${runtime}`;
      const mesh = await startProcess(runtime, { MESH_METRICS_PORT: '0', MESH_REGION: 'fra', MESH_INSTANCE_ID: instance, MESH_TRUSTED_PROXIES: '127.0.0.1, ::1', MESH_LOG: 'info' });
      try {
        const ws = await connect(`${mesh.url.replace('http', 'ws')}/v1/ws?format=envelope`);
        const auth = (await ws.request({ op: 'auth', token: await token('ops-user') })) as { connection: string };
        expect(await ws.request({ op: 'subscribe', channels: ['room_ops', 'user:ops-user'] })).toMatchObject({ success: true });
        // An SSE client behind a proxy on this machine (trusted), which names the client.
        const sse = openSse(`${mesh.url}/v1/sse?token=${await token('ops-sse')}`, { 'x-forwarded-for': '203.0.113.7, 127.0.0.1' });
        const sseConnection = await sse.session();

        const publish = (body: unknown) => fetch(`${mesh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        expect((await publish([{ c: 'room_ops', d: '1' }, { c: 'room_ops', d: '2' }, { c: 'room_ops', d: '3' }])).status).toBe(200);
        expect((await publish({ c: 'user:ops-user', d: 'own' })).status).toBe(200);
        expect((await publish({ c: '', d: 'nowhere' })).status).toBe(400);
        for (let i = 0; i < 3; i++) await ws.next(onChannel('room_ops'));
        await ws.next(onChannel('user:ops-user'));

        const metricsUrl = `http://127.0.0.1:${metricsPortOf(mesh)}/metrics`;
        let page = samples('');
        // Cursors are written in batches, every second.
        await pollUntil(async () => (sample((page = samples((await scrape(metricsUrl)).text)), 'pgmesh_cursor_writes_total') ?? 0) >= 1, 10_000, 'a cursor write');
        expect(sample(page, 'pgmesh_info', { runtime, instance, region: 'fra' })).toBe(1);
        expect(sample(page, 'pgmesh_connections', { transport: 'websocket' })).toBe(1);
        expect(sample(page, 'pgmesh_connections', { transport: 'sse' })).toBe(1);
        expect(sample(page, 'pgmesh_subscriptions')).toBe(2);
        expect(sample(page, 'pgmesh_messages_published_total')).toBe(4);
        expect(sample(page, 'pgmesh_messages_delivered_total')).toBe(4);
        expect(sample(page, 'pgmesh_messages_received_total')).toBe(4);
        expect(sample(page, 'pgmesh_publish_seconds_count')).toBe(2);
        expect(sample(page, 'pgmesh_commit_group_size_sum')).toBe(4);
        expect(sample(page, 'pgmesh_backplane_lag_seconds_count')).toBeGreaterThanOrEqual(1);
        expect(sample(page, 'pgmesh_backplane_lag_seconds_bucket', { le: '+Inf' })).toBe(sample(page, 'pgmesh_backplane_lag_seconds_count'));
        expect(sample(page, 'pgmesh_listen_up')).toBe(1);
        expect(sample(page, 'pgmesh_errors_total', { code: 'ERR_BAD_CHANNEL' })).toBe(1);
        expect(sample(page, 'process_resident_memory_bytes')).toBeGreaterThan(1 << 20);

        // A client op refused counts too.
        expect(await ws.request({ op: 'subscribe', channels: ['$nope'] })).toMatchObject({ success: false });
        const after = samples((await scrape(metricsUrl)).text);
        expect([...after.keys()].filter((k) => k.startsWith('pgmesh_errors_total{')).reduce((n, k) => n + after.get(k)!, 0)).toBe(2);

        // The main port serves it to a caller on this machine (no API key set); the metrics port serves nothing else.
        const main = await scrape(`${mesh.url}/metrics`);
        expect(main.status).toBe(200);
        expect(main.type).toContain('text/plain');
        expect(sample(samples(main.text), 'pgmesh_connections', { transport: 'websocket' })).toBe(1);
        expect((await fetch(metricsUrl.replace('/metrics', '/v1/mesh/stats'))).status).toBe(404);

        ws.close();
        sse.close();
        await pollUntil(async () => logLines(mesh.stderr()).filter((l) => l.msg === 'connection closed').length >= 2, 10_000, 'both closes logged');
        const lines = logLines(mesh.stderr());
        for (const line of lines) {
          expect(line).toMatchObject({ instance, region: 'fra' });
          expect(['debug', 'info', 'warn', 'error']).toContain(line.level);
          expect(Date.parse(line.time as string)).toBeGreaterThan(0);
        }
        const about = (conn: string) => lines.filter((l) => l.conn === conn).map((l) => l.msg);
        expect(about(auth.connection)).toEqual(['connection authenticated', 'connection closed']);
        expect(about(sseConnection)).toEqual(['connection authenticated', 'connection closed']);
        expect(lines.find((l) => l.conn === sseConnection)).toMatchObject({ uid: 'ops-sse', transport: 'sse', ip: '203.0.113.7' });
        expect(lines.find((l) => l.conn === auth.connection)).toMatchObject({ uid: 'ops-user', transport: 'websocket', ip: expect.stringMatching(/127\.0\.0\.1$/) });
      } finally {
        await mesh.stop();
      }
    },
    90_000,
  );
});

describe('behind Fly, and with an API key', () => {
  test('Fly-Client-IP names the client on Fly; X-Forwarded-For from an untrusted peer is ignored; /metrics wants the key; pretty lines in a terminal format', async () => {
    const apiKey = 'ops-api-key-0123456789';
    const mesh = await startProcess('node', { FLY_MACHINE_ID: 'flyops1', FLY_REGION: 'ams', MESH_API_KEY: apiKey, MESH_LOG_FORMAT: 'pretty', MESH_LOG: 'info' });
    try {
      const onFly = openSse(`${mesh.url}/v1/sse?token=${await token('fly-user')}`, { 'fly-client-ip': '198.51.100.9', 'x-forwarded-for': '192.0.2.1' });
      await onFly.session();
      expect((await fetch(`${mesh.url}/metrics`)).status).toBe(401);
      const keyed = await scrape(`${mesh.url}/metrics`, { authorization: `Bearer ${apiKey}` });
      expect(keyed.status).toBe(200);
      expect(sample(samples(keyed.text), 'pgmesh_connections', { transport: 'sse', instance: 'flyops1', region: 'ams' })).toBe(1);
      onFly.close();
      await pollUntil(async () => mesh.stderr().includes('connection closed'), 10_000, 'the close logged');
      const line = mesh.stderr().split('\n').find((l) => l.includes('connection authenticated'))!;
      expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}flyops1\/ams connection authenticated conn=flyops1\.\S+ uid=fly-user transport=sse ip=198\.51\.100\.9$/);
    } finally {
      await mesh.stop();
    }
  }, 60_000);

  test('the client address rule: Fly-Client-IP only on Fly, X-Forwarded-For only from trusted peers, walked back past trusted hops', () => {
    const runtimeWithPeer = (peer: string) => ({ remoteAddress: () => peer }) as unknown as RuntimeAdapter;
    const request = (headers: Record<string, string>) => ({ req: { header: (name: string) => headers[name] } }) as unknown as Context;
    const xff = { 'x-forwarded-for': '203.0.113.7, 10.1.2.3, 10.9.9.9', 'fly-client-ip': '198.51.100.9' };

    const plain = clientAddressOf(runtimeWithPeer('10.0.0.5'), { onFly: false, trustedProxies: [] });
    expect(plain(request(xff))).toBe('10.0.0.5');
    const fly = clientAddressOf(runtimeWithPeer('fdaa::5'), { onFly: true, trustedProxies: [] });
    expect(fly(request(xff))).toBe('198.51.100.9');
    const behindOwn = clientAddressOf(runtimeWithPeer('10.0.0.5'), { onFly: false, trustedProxies: ['10.0.0.0/8'] });
    expect(behindOwn(request(xff))).toBe('203.0.113.7');
    expect(behindOwn(request({}))).toBe('10.0.0.5');
    const narrow = clientAddressOf(runtimeWithPeer('10.0.0.5'), { onFly: false, trustedProxies: ['10.0.0.5', '10.9.9.9'] });
    expect(narrow(request(xff))).toBe('10.1.2.3');
    const untrustedPeer = clientAddressOf(runtimeWithPeer('192.0.2.50'), { onFly: false, trustedProxies: ['10.0.0.0/8'] });
    expect(untrustedPeer(request(xff))).toBe('192.0.2.50');
    const v6 = clientAddressOf(runtimeWithPeer('::ffff:127.0.0.1'), { onFly: false, trustedProxies: ['127.0.0.0/8', 'fd00::/8'] });
    expect(v6(request({ 'x-forwarded-for': '2001:db8::1, fd12:3456::1' }))).toBe('2001:db8::1');
  });
});
