/** The message-center flow: token auth, @user, the application publishing through /v1/mesh/publish. */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { token } from './harness/tokens.ts';

const mesh = await startTestMesh({ MESH_WS_PATHS: '/message-center' });

const D = '{"event":"@user","data":{"uid":1001,"msg":"Hello,World!"}}';

describe('message center', () => {
  test('auth by token, subscribe @user, receive the API publish verbatim as one text frame', async () => {
    const client = await mesh.connect('', '/message-center');
    expect(await client.request({ op: 'auth', token: await token('1001') })).toMatchObject({ op: 'auth', success: true, result: true });
    expect(await client.request({ op: 'subscribe', channel: '@user' })).toMatchObject({
      op: 'subscribe',
      success: true,
      result: true,
      channels: ['user:1001'],
    });
    const res = await mesh.publish({ c: 'user:1001', d: D });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { success: boolean; id: number; ids: number[] };
    expect(body).toMatchObject({ success: true, ids: [body.id] });
    await client.next((f) => typeof f === 'object' && f.event === '@user');
    expect(client.texts.at(-1)).toBe(D);
  });

  test('two clients of two users each get only their own message', async () => {
    const one = await mesh.connect('', '/v1/ws');
    const two = await mesh.connect('', '/message-center');
    await one.request({ op: 'auth', token: await token('2001') });
    await two.request({ op: 'auth', token: await token('2002') });
    await one.request({ op: 'subscribe', channel: '@user' });
    await two.request({ op: 'subscribe', channel: '@user' });
    await mesh.publish([
      { c: 'user:2001', d: 'for 2001' },
      { c: 'user:2002', d: 'for 2002' },
    ]);
    expect(await one.next((f) => f === 'for 2001')).toBe('for 2001');
    expect(await two.next((f) => f === 'for 2002')).toBe('for 2002');
    expect(one.texts).not.toContain('for 2002');
    expect(two.texts).not.toContain('for 2001');
  });

  test('the {"channel","data"} form and non-string data (delivered as JSON text)', async () => {
    const client = await mesh.connect();
    await client.request({ op: 'auth', token: await token('3001') });
    await client.request({ op: 'subscribe', channel: 'user:3001' });
    await mesh.publish({ channel: 'user:3001', data: { kind: 'notice', n: 3 } });
    expect(await client.next((f) => typeof f === 'object' && f.kind === 'notice')).toEqual({ kind: 'notice', n: 3 });
  });

  test('?format=envelope delivers {"event":"message",channel,id,data}', async () => {
    const client = await mesh.connect('format=envelope');
    await client.request({ op: 'auth', token: await token('4001') });
    await client.request({ op: 'subscribe', channel: '@user' });
    const res = (await (await mesh.publish({ c: 'user:4001', d: D })).json()) as { id: number };
    expect(await client.next((f) => typeof f === 'object' && f.event === 'message')).toEqual({
      event: 'message',
      channel: 'user:4001',
      id: res.id,
      data: D,
    });
    await client.request({ op: 'subscribe', channel: 'room_env' });
    const sent = await client.request({ op: 'publish', channel: 'room_env', data: { a: 1 } });
    expect(await client.next((f) => typeof f === 'object' && f.channel === 'room_env')).toEqual({
      event: 'message',
      channel: 'room_env',
      id: sent.id,
      data: { a: 1 },
      uid: '4001',
    });
  });

  test('a token on the connect URL authenticates the socket', async () => {
    const client = await mesh.connect(`token=${await token('5001')}`);
    expect(await client.next((f) => typeof f === 'object' && f.op === 'auth')).toMatchObject({ success: true, uid: '5001' });
    expect(await client.request({ op: 'subscribe', channel: '@user' })).toMatchObject({ success: true, channels: ['user:5001'] });
  });

  test('ping answers pong, before and after auth', async () => {
    const client = await mesh.connect();
    expect(await client.request({ op: 'ping' })).toEqual({ op: 'pong' });
    expect(await client.request({ op: 'ping', rid: 7 })).toEqual({ op: 'pong', rid: 7 });
  });

  test('a request id is echoed on replies', async () => {
    const client = await mesh.login('6001');
    expect(await client.request({ op: 'subscribe', channel: 'room_rid', rid: 'abc' })).toMatchObject({ success: true, rid: 'abc' });
  });
});
