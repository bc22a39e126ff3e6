/** The connmix chat-room flow, word for word, with two and three clients. */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { token } from './harness/tokens.ts';
import { onChannel } from './harness/ws-client.ts';

const mesh = await startTestMesh({ MESH_WS_PATHS: '/chat,/message-center' });

describe('chat room (connmix dialect)', () => {
  test('auth with args replies success', async () => {
    const client = await mesh.connect('', '/chat');
    const reply = await client.request({ op: 'auth', args: [await token('1001')] });
    expect(reply).toMatchObject({ op: 'auth', success: true, result: true, uid: '1001' });
  });

  test('sendtoroom reaches every subscriber of the room, on every connection, and the sender gets a reply', async () => {
    const [a, b, c] = await Promise.all(['alice', 'bob', 'carol'].map((uid) => mesh.login(uid)));
    for (const client of [a!, b!, c!]) {
      expect(await client.request({ op: 'subscribe', args: ['room_101'] })).toMatchObject({ op: 'subscribe', success: true, result: true });
    }
    const reply = await a!.request({ op: 'sendtoroom', args: ['room_101', 'hello,world!'] });
    expect(reply).toMatchObject({ op: 'sendtoroom', success: true, result: true });
    expect(typeof reply.id).toBe('number');
    for (const client of [a!, b!, c!]) {
      const event = await client.next(onChannel('room_101'));
      expect(event).toEqual({ event: 'subscribe', channel: 'room_101', data: 'hello,world!', uid: 'alice', id: reply.id });
    }
  });

  test('a room message does not reach clients outside the room', async () => {
    const [a, b] = await Promise.all([mesh.login('dave'), mesh.login('erin')]);
    await a!.request({ op: 'subscribe', args: ['room_7'] });
    await b!.request({ op: 'subscribe', args: ['room_8'] });
    await a!.request({ op: 'sendtoroom', args: ['room_7', 'only seven'] });
    await b!.request({ op: 'sendtoroom', args: ['room_8', 'only eight'] });
    expect(await b!.next(onChannel('room_8'))).toMatchObject({ data: 'only eight' });
    expect(await a!.next(onChannel('room_7'))).toMatchObject({ data: 'only seven' });
    expect(b!.frames.some((f) => typeof f === 'object' && f.channel === 'room_7')).toBe(false);
  });

  test('subscribe to several rooms in one frame', async () => {
    const a = await mesh.login('frank');
    const reply = await a.request({ op: 'subscribe', args: ['room_101', 'broadcast'] });
    expect(reply).toMatchObject({ success: true, channels: ['room_101', 'broadcast'] });
  });

  test('sendtouser delivers to every connection of that user', async () => {
    const [sender, tab1, tab2] = await Promise.all([mesh.login('gina'), mesh.login('1002'), mesh.login('1002')]);
    for (const tab of [tab1!, tab2!]) await tab.request({ op: 'subscribe', channel: '@user' });
    const reply = await sender!.request({ op: 'sendtouser', args: ['1002', 'psst'] });
    expect(reply).toMatchObject({ op: 'sendtouser', success: true });
    for (const tab of [tab1!, tab2!]) {
      expect(await tab.next(onChannel('user:1002'))).toMatchObject({ event: 'subscribe', channel: 'user:1002', data: 'psst', uid: 'gina' });
    }
  });

  test('sendtouser accepts a numeric user id', async () => {
    const [sender, target] = await Promise.all([mesh.login('hank'), mesh.login('1003')]);
    await target!.request({ op: 'subscribe', args: ['user:1003'] });
    await sender!.request({ op: 'sendtouser', args: [1003, { text: 'hi' }] });
    expect(await target!.next(onChannel('user:1003'))).toMatchObject({ data: { text: 'hi' }, uid: 'hank' });
  });

  test('sendbroadcast goes to the broadcast channel', async () => {
    const [a, b] = await Promise.all([mesh.login('ivan'), mesh.login('judy')]);
    await b!.request({ op: 'subscribe', args: ['broadcast'] });
    expect(await a!.request({ op: 'sendbroadcast', args: ['attention'] })).toMatchObject({ op: 'sendbroadcast', success: true });
    expect(await b!.next(onChannel('broadcast'))).toMatchObject({ event: 'subscribe', channel: 'broadcast', data: 'attention', uid: 'ivan' });
  });

  test('after unsubscribe no more room messages arrive', async () => {
    const [a, b] = await Promise.all([mesh.login('kim'), mesh.login('leo')]);
    await a!.request({ op: 'subscribe', args: ['room_u'] });
    await b!.request({ op: 'subscribe', args: ['room_u'] });
    expect(await b!.request({ op: 'unsubscribe', args: ['room_u'] })).toMatchObject({ op: 'unsubscribe', success: true, result: true });
    await a!.request({ op: 'sendtoroom', args: ['room_u', 'first'] });
    // b resubscribes to a marker room; once the marker arrives, 'first' would have arrived before it.
    await b!.request({ op: 'subscribe', args: ['room_marker'] });
    await a!.request({ op: 'sendtoroom', args: ['room_marker', 'marker'] });
    await b!.next(onChannel('room_marker'));
    expect(b!.frames.some((f) => typeof f === 'object' && f.channel === 'room_u')).toBe(false);
    expect(await a!.next(onChannel('room_u'))).toMatchObject({ data: 'first' });
  });

  test('the native publish op with structured data', async () => {
    const [a, b] = await Promise.all([mesh.login('mia'), mesh.login('ned')]);
    await b!.request({ op: 'subscribe', channel: 'room_native' });
    const reply = await a!.request({ op: 'publish', channel: 'room_native', data: { n: 1, list: [1, 2] } });
    expect(reply).toMatchObject({ op: 'publish', success: true, channel: 'room_native' });
    expect(await b!.next(onChannel('room_native'))).toEqual({
      event: 'subscribe',
      channel: 'room_native',
      data: { n: 1, list: [1, 2] },
      uid: 'mia',
      id: reply.id,
    });
  });

  test('the flow works on every MESH_WS_PATHS path', async () => {
    const a = await mesh.connect('', '/message-center');
    await a.request({ op: 'auth', args: [await token('olga')] });
    await a.request({ op: 'subscribe', args: ['room_paths'] });
    const b = await mesh.connect('', '/chat');
    await b.request({ op: 'auth', token: await token('pete') });
    await b.request({ op: 'sendtoroom', args: ['room_paths', 'across paths'] });
    expect(await a.next(onChannel('room_paths'))).toMatchObject({ data: 'across paths', uid: 'pete' });
  });

  test('messages on a channel arrive in id order', async () => {
    const [a, b] = await Promise.all([mesh.login('quin'), mesh.login('rosa')]);
    await b!.request({ op: 'subscribe', args: ['room_order'] });
    for (let i = 0; i < 50; i++) a!.send({ op: 'sendtoroom', args: ['room_order', `m${i}`] });
    const got: { id: number; data: string }[] = [];
    for (let i = 0; i < 50; i++) got.push((await b!.next(onChannel('room_order'))) as { id: number; data: string });
    expect(got.map((m) => m.data)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(got.map((m) => m.id)).toEqual([...got.map((m) => m.id)].sort((x, y) => x - y));
  });

  test('raw and envelope subscribers of one room each get their own framing (one native topic per format on Bun)', async () => {
    const raw = await mesh.login('sam');
    const env = await mesh.login('tess', {}, 'format=envelope');
    const resumed = await mesh.login('uma');
    await raw.request({ op: 'subscribe', args: ['room_formats'] });
    await env.request({ op: 'subscribe', args: ['room_formats'] });
    const first = await raw.request({ op: 'sendtoroom', args: ['room_formats', 'one'] });
    // A third subscriber resuming from before the first message replays it, then goes live.
    await resumed.request({ op: 'subscribe', args: ['room_formats'], since: (first.id as number) - 1 });
    await raw.request({ op: 'sendtoroom', args: ['room_formats', 'two'] });
    for (const client of [raw, resumed]) {
      expect(await client.next(onChannel('room_formats'))).toMatchObject({ event: 'subscribe', data: 'one' });
      expect(await client.next(onChannel('room_formats'))).toMatchObject({ event: 'subscribe', data: 'two' });
    }
    expect(await env.next(onChannel('room_formats'))).toMatchObject({ event: 'message', data: 'one', uid: 'sam' });
    expect(await env.next(onChannel('room_formats'))).toMatchObject({ event: 'message', data: 'two', uid: 'sam' });
    expect(mesh.hub.subscriberCount('room_formats')).toBe(3);
  });
});
