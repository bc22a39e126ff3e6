/**
 * The presence batch: what one flush writes for connections whose state changed
 * between two flushes.
 */
import { describe, expect, test } from 'bun:test';
import { PresenceBatch } from '../src/store/presence-batch.ts';

describe('a presence batch', () => {
  // Laravel Echo's private() then join(): the socket is nobody for the first, a member for the second.
  test('each subscription goes out under the uid the connection had when it was made, even when both wait in one batch', () => {
    const batch = new PresenceBatch();
    batch.connected('s1', { uid: '$pusher:1:#s1', transport: 'websocket', connectedAt: 1 });
    batch.subscribed('s1', '$pusher:1:#s1', ['$pusher:1:private-orders.1']);
    batch.connected('s1', { uid: '$pusher:1:42', transport: 'websocket', connectedAt: 1 });
    batch.subscribed('s1', '$pusher:1:42', ['$pusher:1:presence-room.1'], '{"name":"Ann"}');
    const json = batch.take().toJSON();
    expect(json.up).toEqual([['s1', '$pusher:1:42', 'websocket', 1]]);
    expect(json.sub).toEqual([
      ['s1', '$pusher:1:private-orders.1', '$pusher:1:#s1'],
      ['s1', '$pusher:1:presence-room.1', '$pusher:1:42', '{"name":"Ann"}'],
    ]);
  });

  test('a connection gone before the flush is never written, and news of it after its end is ignored', () => {
    const batch = new PresenceBatch();
    batch.connected('s2', { uid: 'u', transport: 'sse', connectedAt: 1 });
    batch.subscribed('s2', 'u', ['room']);
    batch.disconnected('s2', 'client_closed');
    batch.subscribed('s2', 'u', ['late']);
    batch.connected('s2', { uid: 'u', transport: 'sse', connectedAt: 1 });
    expect(batch.take().toJSON()).toEqual({ up: [], down: [['s2', 'client_closed']], sub: [], unsub: [] });
  });
});
