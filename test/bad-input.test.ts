/** Bad frames get a defined answer with a stable code; the server keeps serving everyone. */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';

const mesh = await startTestMesh({ MESH_MAX_FRAME: '1k' });

const cases: [string, unknown, string, number, string][] = [
  ['invalid JSON', '{"op":"auth",', 'error', 10, 'ERR_BAD_JSON'],
  ['a JSON array', '[1,2]', 'error', 12, 'ERR_BAD_ARGS'],
  ['a frame without op', { token: 'x' }, 'error', 12, 'ERR_BAD_ARGS'],
  ['an unknown op', { op: 'launch' }, 'launch', 11, 'ERR_UNKNOWN_OP'],
  ['auth without a token', { op: 'auth' }, 'auth', 12, 'ERR_BAD_ARGS'],
  ['auth with a number token', { op: 'auth', args: [42] }, 'auth', 12, 'ERR_BAD_ARGS'],
  ['subscribe without channels', { op: 'subscribe' }, 'subscribe', 12, 'ERR_BAD_ARGS'],
  ['subscribe with an object channel', { op: 'subscribe', channel: { a: 1 } }, 'subscribe', 12, 'ERR_BAD_ARGS'],
  ['subscribe with a negative since', { op: 'subscribe', channel: 'r', since: -1 }, 'subscribe', 12, 'ERR_BAD_ARGS'],
  ['sendtoroom without a message', { op: 'sendtoroom', args: ['room_1'] }, 'sendtoroom', 12, 'ERR_BAD_ARGS'],
  ['sendtouser with an object user', { op: 'sendtouser', args: [{}, 'x'] }, 'sendtouser', 12, 'ERR_BAD_ARGS'],
  ['ack with a string id', { op: 'ack', id: 'seven' }, 'ack', 12, 'ERR_BAD_ARGS'],
];

describe('bad frames', () => {
  for (const [what, frame, op, code, reason] of cases) {
    test(`${what} -> ${reason}`, async () => {
      const client = await mesh.login('bad1');
      client.send(frame);
      const reply = await client.next((f) => typeof f === 'object' && f.success === false);
      expect(reply).toMatchObject({ op, success: false, code, reason });
      expect(await client.request({ op: 'ping' })).toEqual({ op: 'pong' });
    });
  }

  test('an invalid channel name in subscribe and publish -> ERR_BAD_CHANNEL', async () => {
    const client = await mesh.login('bad2');
    expect(await client.request({ op: 'subscribe', channel: 'a b' })).toMatchObject({ success: false, code: 21, reason: 'ERR_BAD_CHANNEL' });
    expect(await client.request({ op: 'sendtoroom', args: ['x'.repeat(300), 'm'] })).toMatchObject({ success: false, code: 21 });
  });

  test('a message over MESH_MAX_MESSAGE from a client -> ERR_TOO_LARGE', async () => {
    const small = await startTestMesh({ MESH_MAX_MESSAGE: '100' });
    const client = await small.login('bad3');
    expect(await client.request({ op: 'sendtoroom', args: ['room', 'y'.repeat(200)] })).toMatchObject({ success: false, code: 22, reason: 'ERR_TOO_LARGE' });
  });

  test('a binary frame -> ERR_BINARY_FRAME, and the socket stays open', async () => {
    const client = await mesh.login('bad4');
    client.socket.send(new Uint8Array([1, 2, 3]));
    expect(await client.next((f) => typeof f === 'object' && f.success === false)).toMatchObject({ code: 13, reason: 'ERR_BINARY_FRAME' });
    expect(await client.request({ op: 'ping' })).toEqual({ op: 'pong' });
  });

  test('a frame over MESH_MAX_FRAME closes the socket with 1009; others are unaffected', async () => {
    const bystander = await mesh.login('bad5');
    const client = await mesh.login('bad6');
    client.send({ op: 'sendtoroom', args: ['room', 'z'.repeat(2000)] });
    expect((await client.closed).code).toBe(1009);
    expect(await bystander.request({ op: 'ping' })).toEqual({ op: 'pong' });
    expect((await fetch(`${mesh.url}/healthz`)).status).toBe(200);
  });
});

describe('health', () => {
  test('/healthz answers 200 while the store is reachable, 503 once it is not', async () => {
    const m = await startTestMesh({}, { stopAfterAll: false });
    const ok = await fetch(`${m.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, store: 'pglite', listening: true });
    // Closing the store under a running server: health must say so rather than hang or lie.
    await m.store.close();
    const down = await fetch(`${m.url}/healthz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ ok: false, code: 'ERR_UNAVAILABLE' });
    await m.stop().catch(() => {});
  });
});
