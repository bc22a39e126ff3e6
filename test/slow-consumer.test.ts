/**
 * A client that stops reading: once its unread bytes pass MESH_MAX_BUFFERED it is
 * closed with 4008 — after everything already queued for it — and clients that
 * read are unaffected: they get every message. The same for SSE streams, whose
 * body each runtime's adapter provides differently (a direct stream on Bun).
 */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { RUNTIMES, startProcess } from './harness/process.ts';
import { rawEventStream } from './harness/raw-sse.ts';
import { rawWebSocket } from './harness/raw-ws.ts';
import { token } from './harness/tokens.ts';

describe('a slow consumer', () => {
  test('is closed with 4008 past MESH_MAX_BUFFERED; a reading client on the same channel gets every message', async () => {
    const mesh = await startTestMesh({ MESH_MAX_BUFFERED: '256k' });
    const reader = await mesh.login('fast-1');
    await reader.request({ op: 'subscribe', args: ['room_slow'] });
    const stalled = await rawWebSocket(mesh.port, '/v1/ws');
    stalled.send(JSON.stringify({ op: 'auth', token: await token('slow-1') }));
    stalled.send(JSON.stringify({ op: 'subscribe', args: ['room_slow'] }));
    await stalled.until(() => stalled.texts.some((t) => t.includes('"op":"subscribe"')));
    const connection = JSON.parse(stalled.texts[0]!).connection as string;
    stalled.pause();

    // 10 KB messages until the server gives up on the stalled client (its kernel buffers take some first).
    const body = 'x'.repeat(10 * 1024);
    let sent = 0;
    const gone = mesh.sessionClosed(connection, 60_000);
    let closed = false;
    void gone.then(() => (closed = true));
    // Small batches: once the server gives up, the client must resume soon, or the server's own
    // deadline for the closing handshake cuts the socket before its close frame is read.
    while (!closed && sent < 20_000) {
      const batch = Array.from({ length: 10 }, (_, i) => ({ c: 'room_slow', d: `${sent + i}:${body}` }));
      expect((await mesh.publish(batch)).status).toBe(200);
      sent += batch.length;
    }
    await gone;
    expect(await stalled.resumeUntilClose(30_000)).toEqual({ code: 4008, reason: 'slow consumer' });
    await reader.until(() => reader.texts.filter((t) => t.endsWith(body)).length === sent, 30_000);
    expect(reader.socket.readyState).toBe(WebSocket.OPEN);
  }, 90_000);
});

describe.each(RUNTIMES)('an SSE stream that stops reading, on %s', (runtime) => {
  test('is closed with 4008 past MESH_MAX_BUFFERED, the close event after everything queued before it', async () => {
    const mesh = await startProcess(runtime, { MESH_MAX_BUFFERED: '256k' });
    try {
      const stream = await rawEventStream(Number(new URL(mesh.url).port), `/v1/sse?channel=room_slow&token=${await token('slow-sse')}`);
      await stream.until(() => stream.text().includes('event: session'));
      stream.pause();
      const open = async () => ((await (await fetch(`${mesh.url}/v1/mesh/stats`)).json()) as { sessions: { sse: number } }).sessions.sse;
      expect(await open()).toBe(1);

      // 10 KB messages until the server gives up on the stream (the kernel's buffers and, on Bun, its own take some first).
      const body = 'x'.repeat(10 * 1024);
      let sent = 0;
      while ((await open()) === 1 && sent < 5000) {
        const batch = Array.from({ length: 50 }, (_, i) => ({ c: 'room_slow', d: `${sent + i}:${body}` }));
        const res = await fetch(`${mesh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
        expect(res.status).toBe(200);
        sent += batch.length;
      }
      expect(await open()).toBe(0);
      stream.resume();
      await stream.until(() => stream.text().includes('event: close'), 30_000);
      expect(stream.text()).toContain('event: close\ndata: {"code":4008,"reason":"slow consumer"}\n\n');
      // What was delivered before the close came whole and in order.
      const ids = [...stream.text().matchAll(/^data: (\d+):x+$/gm)].map((m) => Number(m[1]));
      expect(ids.length).toBeGreaterThan(0);
      expect(ids).toEqual(ids.map((_, i) => i));
    } finally {
      await mesh.stop('SIGKILL');
    }
  }, 120_000);
});
