/**
 * Client ops answered by the backend (MESH_RPC_URL), over both transports: the
 * call reaches the backend signed, with the caller's uid and connection id; its
 * result comes back as the reply, its refusal as an error frame with its own
 * code and message, and the messages it asks for are published as the caller's.
 * A backend that hangs, fails or is absent gives a defined error, and stalls no
 * one else.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ConfigError, loadConfig } from '../src/config.ts';
import { startTestMesh } from './harness/mesh.ts';
import { openClient, type TransportName } from './harness/transports.ts';

const SECRET = 'rpc-test-secret-0123456789';

interface Received {
  body: { method: string; data: unknown; uid: string; connection: string; instance: string };
  signature: string;
  raw: string;
}

/** The application's RPC endpoint, as a PHP app would run it. */
const received: Received[] = [];
const hanging: ServerResponse[] = [];
const backend = createServer((req: IncomingMessage, res: ServerResponse) => {
  let raw = '';
  req.on('data', (d) => (raw += d));
  req.on('end', () => {
    const body = JSON.parse(raw) as Received['body'];
    received.push({ body, signature: String(req.headers['pgmesh-signature']), raw });
    const answer = (status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    switch (body.method) {
      case 'order.place':
        return answer(200, { result: { order: 42, by: body.uid, items: (body.data as { items: number }).items }, publish: [{ c: 'room_orders', d: `order 42 placed by ${body.uid}` }] });
      case 'order.reject':
        return answer(409, { error: { code: 'OUT_OF_STOCK', message: 'no more of that' } });
      case 'bad.channel':
        return answer(200, { result: 1, publish: [{ c: '$nope', d: 'x' }] });
      case 'broken':
        return res.writeHead(500).end('Fatal error: Uncaught Exception');
      case 'hang':
        return void hanging.push(res);
      default:
        return answer(200, { result: null });
    }
  });
});
await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
const backendUrl = `http://127.0.0.1:${(backend.address() as { port: number }).port}/rpc.php`;
afterAll(() => {
  for (const res of hanging) res.end();
  backend.close();
});

const mesh = await startTestMesh({ MESH_RPC_URL: backendUrl, MESH_WEBHOOK_SECRET: SECRET, MESH_RPC_TIMEOUT: '400ms' });
const withoutBackend = await startTestMesh();

/** Checks a signature the way a receiver does, without pgmesh's code. */
function signedWell(header: string, raw: string): boolean {
  const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header) ?? [];
  if (t === undefined) return false;
  const expected = createHmac('sha256', SECRET).update(`${t}.${raw}`).digest('hex');
  return expected === v1 && Math.abs(Date.now() / 1000 - Number(t)) < 60;
}

describe.each(['websocket', 'sse'] as TransportName[])('rpc over %s', (transport) => {
  test('the answer comes back as the reply, and the backend publishes as the caller', async () => {
    const caller = await openClient(transport, mesh, `rpc-buyer-${transport}`);
    const watcher = await openClient(transport, mesh, `rpc-watcher-${transport}`);
    expect(await watcher.request({ op: 'subscribe', channels: ['room_orders'] })).toMatchObject({ success: true });
    const before = watcher.messages.length;
    const reply = await caller.request({ op: 'rpc', method: 'order.place', data: { items: 3 }, rid: 7 });
    expect(reply).toMatchObject({ op: 'rpc', rid: 7, success: true, result: { order: 42, by: `rpc-buyer-${transport}`, items: 3 } });
    const call = received.at(-1)!;
    expect(call.body).toEqual({ method: 'order.place', data: { items: 3 }, uid: `rpc-buyer-${transport}`, connection: caller.auth.connection as string, instance: expect.any(String) });
    expect(signedWell(call.signature, call.raw)).toBe(true);
    const [published] = (await watcher.messagesUntil(before + 1)).slice(before);
    expect(published).toContain(`order 42 placed by rpc-buyer-${transport}`);
    caller.close();
    watcher.close();
  });

  test("a refusal is an error frame with the backend's code and message; failures and timeouts have codes of their own", async () => {
    const caller = await openClient(transport, mesh, `rpc-refused-${transport}`);
    expect(await caller.request({ op: 'rpc', method: 'order.reject', rid: 1 })).toMatchObject({
      op: 'rpc',
      rid: 1,
      success: false,
      reason: 'ERR_RPC_REFUSED',
      error: 'no more of that',
      rpc: { code: 'OUT_OF_STOCK', message: 'no more of that' },
    });
    expect(await caller.request({ op: 'rpc', method: 'broken', rid: 2 })).toMatchObject({ success: false, reason: 'ERR_RPC_UNAVAILABLE', code: 52 });
    expect(await caller.request({ op: 'rpc', method: 'bad.channel', rid: 3 })).toMatchObject({ success: false, reason: 'ERR_RPC_UNAVAILABLE' });
    expect(await caller.request({ op: 'rpc', method: 'hang', rid: 4 })).toMatchObject({ success: false, reason: 'ERR_RPC_TIMEOUT', code: 51 });
    expect(await caller.request({ op: 'rpc', rid: 5 })).toMatchObject({ success: false, reason: 'ERR_BAD_ARGS' });
    // The connection lives on.
    expect(await caller.request({ op: 'rpc', method: 'order.place', data: { items: 1 }, rid: 6 })).toMatchObject({ success: true });
    caller.close();
  });

  test('a hanging backend stalls only its caller: everyone else is answered meanwhile', async () => {
    const stuck = await openClient(transport, mesh, `rpc-stuck-${transport}`);
    const other = await openClient(transport, mesh, `rpc-other-${transport}`);
    const order: string[] = [];
    const hung = stuck.request({ op: 'rpc', method: 'hang', rid: 'h' }).then((r) => (order.push('hung call answered'), r));
    expect(await other.request({ op: 'subscribe', channels: ['room_busy'] })).toMatchObject({ success: true });
    expect(await other.request({ op: 'publish', channel: 'room_busy', data: 'still here' })).toMatchObject({ success: true });
    expect(await other.request({ op: 'rpc', method: 'order.place', data: { items: 2 } })).toMatchObject({ success: true });
    order.push('others answered');
    expect(await hung).toMatchObject({ success: false, reason: 'ERR_RPC_TIMEOUT' });
    expect(order).toEqual(['others answered', 'hung call answered']);
    stuck.close();
    other.close();
  });

  test('without MESH_RPC_URL an rpc is refused with ERR_RPC_UNAVAILABLE', async () => {
    const caller = await openClient(transport, withoutBackend, `rpc-none-${transport}`);
    expect(await caller.request({ op: 'rpc', method: 'order.place', rid: 9 })).toMatchObject({ op: 'rpc', rid: 9, success: false, reason: 'ERR_RPC_UNAVAILABLE' });
    caller.close();
  });
});

test('MESH_RPC_URL without MESH_WEBHOOK_SECRET does not start: the calls could not be signed', () => {
  expect(() => loadConfig({ MESH_RPC_URL: backendUrl })).toThrow(ConfigError);
  expect(() => loadConfig({ MESH_RPC_URL: backendUrl })).toThrow('MESH_WEBHOOK_SECRET');
});
