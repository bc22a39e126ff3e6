/** POST /v1/mesh/publish: the accepted forms, the key, and a 4xx with a JSON error for every bad request. */
import { describe, expect, test } from 'bun:test';
import { networkInterfaces } from 'node:os';
import { startTestMesh } from './harness/mesh.ts';

const KEY = 'k'.repeat(32);
const open = await startTestMesh({ MESH_MAX_MESSAGE: '1k' });
const keyed = await startTestMesh({ MESH_API_KEY: KEY });

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain('application/json');
  const body = (await res.json()) as { success: boolean; code: string; error: string };
  expect(body).toMatchObject({ success: false, code });
  expect(body.error.length).toBeGreaterThan(0);
  return body;
}

describe('accepted forms', () => {
  test('connmix {"c","d"} answers the stored id', async () => {
    const body = (await (await open.publish({ c: 'user:1', d: 'x' })).json()) as { id: number; ids: number[] };
    expect(body.ids).toEqual([body.id]);
  });

  test('an array of mixed forms answers consecutive ids in order', async () => {
    const res = await open.publish([{ c: 'a', d: '1' }, { channel: 'b', data: '2' }, { c: 'c', d: { x: 3 } }]);
    expect(res.status).toBe(200);
    const { ids } = (await res.json()) as { ids: number[] };
    expect(ids).toHaveLength(3);
    expect(ids[1]).toBe(ids[0]! + 1);
    expect(ids[2]).toBe(ids[0]! + 2);
  });

  // The plain {"c","d"} body has a path of its own (no schema): its neighbours must come out the same.
  test('a plain {"c","d"} and its variants store the same data', async () => {
    const bodies = [{ c: 'plain', d: 'x' }, { c: 'plain', d: 'x', extra: 1 }, { c: 'plain', d: { x: 1 } }, { c: 'plain', d: null }, { c: 'plain', d: 'y', exclude: [] }];
    let since = Infinity;
    for (const body of bodies) {
      const res = await open.publish(body);
      expect(res.status).toBe(200);
      since = Math.min(since, ((await res.json()) as { id: number }).id - 1);
    }
    const history = (await (await fetch(`${open.url}/v1/mesh/channels/plain/history?since=${since}`)).json()) as { messages: { data: string }[] };
    expect(history.messages.map((m) => m.data)).toEqual(['x', 'x', '{"x":1}', 'null', 'y']);
    await expectError(await open.publish({ c: 1, d: 'x' }), 400, 'ERR_BAD_ARGS');
    await expectError(await open.publish({ c: 'plain' }), 400, 'ERR_BAD_ARGS');
  });
});

describe('MESH_API_KEY', () => {
  test('the right Bearer key is accepted', async () => {
    expect((await keyed.publish({ c: 'a', d: 'x' }, { authorization: `Bearer ${KEY}` })).status).toBe(200);
  });
  test('a missing or wrong key gets 401 ERR_BAD_API_KEY', async () => {
    await expectError(await keyed.publish({ c: 'a', d: 'x' }), 401, 'ERR_BAD_API_KEY');
    await expectError(await keyed.publish({ c: 'a', d: 'x' }, { authorization: `Bearer ${'z'.repeat(32)}` }), 401, 'ERR_BAD_API_KEY');
    await expectError(await keyed.publish({ c: 'a', d: 'x' }, { authorization: KEY }), 401, 'ERR_BAD_API_KEY');
  });
  test('with no key configured, a caller that is not on loopback gets 403', async () => {
    const address = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    expect(address).toBeDefined();
    const wide = await startTestMesh({ HOST: '0.0.0.0' });
    const res = await fetch(`http://${address}:${wide.port}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'a', d: 'x' }) });
    await expectError(res, 403, 'ERR_FORBIDDEN');
    // The same server still serves loopback callers.
    expect((await wide.publish({ c: 'a', d: 'x' })).status).toBe(200);
  });
});

describe('bad requests', () => {
  test('invalid JSON: 400 ERR_BAD_JSON', async () => {
    await expectError(await open.publish('{"c":'), 400, 'ERR_BAD_JSON');
  });
  test('missing fields: 400 ERR_BAD_ARGS', async () => {
    await expectError(await open.publish({ c: 'a' }), 400, 'ERR_BAD_ARGS');
    await expectError(await open.publish({ d: 'x' }), 400, 'ERR_BAD_ARGS');
    await expectError(await open.publish({ c: 5, d: 'x' }), 400, 'ERR_BAD_ARGS');
    await expectError(await open.publish([]), 400, 'ERR_BAD_ARGS');
    await expectError(await open.publish('"just a string"'), 400, 'ERR_BAD_ARGS');
  });
  test('an over-long or malformed channel name: 400 ERR_BAD_CHANNEL', async () => {
    await expectError(await open.publish({ c: 'x'.repeat(256), d: 'x' }), 400, 'ERR_BAD_CHANNEL');
    await expectError(await open.publish({ c: 'has space', d: 'x' }), 400, 'ERR_BAD_CHANNEL');
    await expectError(await open.publish({ c: '', d: 'x' }), 400, 'ERR_BAD_CHANNEL');
  });
  test('an oversize message: 413 ERR_TOO_LARGE, and nothing of the batch is stored', async () => {
    const before = (await (await open.publish({ c: 'probe', d: '1' })).json()) as { id: number };
    await expectError(await open.publish([{ c: 'a', d: 'ok' }, { c: 'a', d: 'x'.repeat(1025) }]), 413, 'ERR_TOO_LARGE');
    const after = (await (await open.publish({ c: 'probe', d: '2' })).json()) as { id: number };
    expect(after.id).toBe(before.id + 1);
  });
  test('an oversize body: 413 ERR_TOO_LARGE', async () => {
    await expectError(await open.publish('x'.repeat(9 * 1024)), 413, 'ERR_TOO_LARGE');
  });
  test('an unknown route: 404 with a JSON error', async () => {
    await expectError(await fetch(`${open.url}/v1/mesh/nope`), 404, 'ERR_NOT_FOUND');
  });
});
