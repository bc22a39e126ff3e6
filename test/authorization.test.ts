/** Who may subscribe and publish where: the default policy and the `channels` / `publish` claims. */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { onChannel } from './harness/ws-client.ts';

const mesh = await startTestMesh();

describe('subscribe policy', () => {
  test('own user channel, by alias or by name, and public channels are allowed', async () => {
    const c = await mesh.login('a1');
    expect(await c.request({ op: 'subscribe', channel: '@user' })).toMatchObject({ success: true, channels: ['user:a1'] });
    expect(await c.request({ op: 'subscribe', channel: 'user:a1' })).toMatchObject({ success: true });
    expect(await c.request({ op: 'subscribe', args: ['room_public', 'broadcast'] })).toMatchObject({ success: true });
  });

  test("another user's channel is denied with code 20", async () => {
    const c = await mesh.login('a2');
    expect(await c.request({ op: 'subscribe', channel: 'user:a1' })).toMatchObject({
      op: 'subscribe',
      success: false,
      code: 20,
      reason: 'ERR_FORBIDDEN',
    });
    // A denied channel in a list fails the whole frame: nothing is subscribed.
    expect(await c.request({ op: 'subscribe', args: ['room_ok', 'user:a1'] })).toMatchObject({ success: false, code: 20 });
    await mesh.publish({ c: 'room_ok', d: 'should not arrive' });
    await c.request({ op: 'subscribe', args: ['room_marker2'] });
    await mesh.publish({ c: 'room_marker2', d: 'marker' });
    await c.next((f) => f === 'marker');
    expect(c.texts).not.toContain('should not arrive');
  });

  test('a channels claim grants other user channels by pattern', async () => {
    const support = await mesh.login('agent', { channels: ['user:*'] });
    expect(await support.request({ op: 'subscribe', channel: 'user:a1' })).toMatchObject({ success: true });
    const team = await mesh.login('lead', { channels: ['user:team-*'] });
    expect(await team.request({ op: 'subscribe', channel: 'user:team-7' })).toMatchObject({ success: true });
    expect(await team.request({ op: 'subscribe', channel: 'user:boss' })).toMatchObject({ success: false, code: 20 });
  });
});

describe('publish policy', () => {
  test('by default a client may publish to rooms, users and broadcast', async () => {
    const c = await mesh.login('p1');
    expect(await c.request({ op: 'sendtoroom', args: ['room_x', 'hi'] })).toMatchObject({ success: true });
    expect(await c.request({ op: 'sendtouser', args: ['p2', 'hi'] })).toMatchObject({ success: true });
    expect(await c.request({ op: 'sendbroadcast', args: ['hi'] })).toMatchObject({ success: true });
  });

  test('a publish claim limits publishing to its patterns', async () => {
    const c = await mesh.login('p3', { publish: ['room_*'] });
    const listener = await mesh.login('p4');
    await listener.request({ op: 'subscribe', args: ['broadcast', 'room_y'] });
    expect(await c.request({ op: 'sendtoroom', args: ['room_y', 'allowed'] })).toMatchObject({ success: true });
    expect(await c.request({ op: 'sendbroadcast', args: ['denied'] })).toMatchObject({ op: 'sendbroadcast', success: false, code: 20 });
    expect(await c.request({ op: 'sendtouser', args: ['p4', 'denied'] })).toMatchObject({ success: false, code: 20 });
    expect(await listener.next(onChannel('room_y'))).toMatchObject({ data: 'allowed' });
    expect(listener.frames.some((f) => typeof f === 'object' && f.data === 'denied')).toBe(false);
  });

  test('an empty publish claim makes a read-only client', async () => {
    const c = await mesh.login('p5', { publish: [] });
    expect(await c.request({ op: 'publish', channel: 'room_z', data: 1 })).toMatchObject({ success: false, code: 20 });
  });
});
