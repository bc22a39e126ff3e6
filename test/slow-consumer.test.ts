/**
 * A client that stops reading: once its unread bytes pass MESH_MAX_BUFFERED it is
 * closed with 4008 — after everything already queued for it — and clients that
 * read are unaffected: they get every message.
 */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
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
    while (!closed && sent < 20_000) {
      const batch = Array.from({ length: 50 }, (_, i) => ({ c: 'room_slow', d: `${sent + i}:${body}` }));
      expect((await mesh.publish(batch)).status).toBe(200);
      sent += batch.length;
    }
    await gone;
    expect(await stalled.resumeUntilClose(30_000)).toEqual({ code: 4008, reason: 'slow consumer' });
    await reader.until(() => reader.texts.filter((t) => t.endsWith(body)).length === sent, 30_000);
    expect(reader.socket.readyState).toBe(WebSocket.OPEN);
  }, 90_000);
});
