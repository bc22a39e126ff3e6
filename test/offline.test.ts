/** Offline delivery: what was sent to user:<uid> while the user had no connection arrives on the next subscribe, once. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh } from './harness/mesh.ts';

const texts = (list: string[], prefix: string) => list.filter((t) => t.startsWith(prefix));

describe('offline delivery through the per-user cursor', () => {
  test('messages sent while offline arrive on the next subscribe, exactly once per cursor', async () => {
    const mesh = await startTestMesh();
    const first = await mesh.login('7001');
    await first.request({ op: 'subscribe', channel: '@user' });
    await mesh.publish({ c: 'user:7001', d: 'live-1' });
    await first.next((f) => f === 'live-1');
    first.close();
    await first.closed;

    await mesh.publish([
      { c: 'user:7001', d: 'offline-1' },
      { c: 'user:7001', d: 'offline-2' },
      { c: 'user:7002', d: 'not-mine' },
    ]);

    const second = await mesh.login('7001');
    await second.request({ op: 'subscribe', channel: '@user' });
    await second.next((f) => f === 'offline-2');
    expect(texts(second.texts, 'offline-')).toEqual(['offline-1', 'offline-2']);
    expect(second.texts).not.toContain('live-1');
    expect(second.texts).not.toContain('not-mine');
    second.close();
    await second.closed;

    // Nothing new: the next session gets nothing replayed, and then live messages as usual.
    const third = await mesh.login('7001');
    await third.request({ op: 'subscribe', channel: '@user' });
    await mesh.publish({ c: 'user:7001', d: 'live-2' });
    await third.next((f) => f === 'live-2');
    expect(third.texts.filter((t) => !t.startsWith('{'))).toEqual(['live-2']);
  });

  test('a user who never connected gets what was sent to them on first subscribe', async () => {
    const mesh = await startTestMesh();
    await mesh.publish({ c: 'user:7100', d: 'welcome' });
    const client = await mesh.login('7100');
    await client.request({ op: 'subscribe', channel: '@user' });
    expect(await client.next((f) => f === 'welcome')).toBe('welcome');
  });

  test('a message published during the subscribe is delivered once, after the replay', async () => {
    const mesh = await startTestMesh();
    await mesh.publish(Array.from({ length: 300 }, (_, i) => ({ c: 'user:7200', d: `old-${i}` })));
    const client = await mesh.login('7200');
    client.send({ op: 'subscribe', channel: '@user' });
    const racing = mesh.publish(Array.from({ length: 50 }, (_, i) => ({ c: 'user:7200', d: `new-${i}` })));
    await racing;
    await client.next((f) => f === 'new-49', 10_000);
    const got = client.texts.filter((t) => !t.startsWith('{'));
    expect(got).toEqual([...Array.from({ length: 300 }, (_, i) => `old-${i}`), ...Array.from({ length: 50 }, (_, i) => `new-${i}`)]);
  });

  test('cursors survive a restart of the server (embedded store in a data folder)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-offline-'));
    const one = await startTestMesh({ MESH_DATA_DIR: dir }, { stopAfterAll: false });
    const client = await one.login('7300');
    await client.request({ op: 'subscribe', channel: '@user' });
    await one.publish({ c: 'user:7300', d: 'seen-before-restart' });
    await client.next((f) => f === 'seen-before-restart');
    await one.stop();

    const two = await startTestMesh({ MESH_DATA_DIR: dir });
    await two.publish({ c: 'user:7300', d: 'sent-while-down' });
    const again = await two.login('7300');
    await again.request({ op: 'subscribe', channel: '@user' });
    await again.next((f) => f === 'sent-while-down');
    expect(again.texts).not.toContain('seen-before-restart');
  });

  test('with ?ack=1 the cursor moves only on explicit acks', async () => {
    const mesh = await startTestMesh();
    const a = await mesh.login('7400', {}, 'ack=1&format=envelope');
    await a.request({ op: 'subscribe', channel: '@user' });
    const ids = ((await (await mesh.publish([{ c: 'user:7400', d: 'one' }, { c: 'user:7400', d: 'two' }])).json()) as { ids: number[] }).ids;
    await a.next((f) => typeof f === 'object' && f.data === 'two');
    expect(await a.request({ op: 'ack', id: ids[0] })).toMatchObject({ op: 'ack', success: true });
    a.close();
    await a.closed;
    const b = await mesh.login('7400', {}, 'ack=1&format=envelope');
    await b.request({ op: 'subscribe', channel: '@user' });
    expect(await b.next((f) => typeof f === 'object' && f.event === 'message')).toMatchObject({ id: ids[1], data: 'two' });
  });

  test('since replays a channel from a position, without the server cursor', async () => {
    const mesh = await startTestMesh();
    const ids = ((await (await mesh.publish(['a', 'b', 'c'].map((d) => ({ c: 'room_since', d })))).json()) as { ids: number[] }).ids;
    const client = await mesh.login('7500');
    await client.request({ op: 'subscribe', channel: 'room_since', since: ids[0] });
    await client.next((f) => f === 'c');
    expect(client.texts.filter((t) => !t.startsWith('{'))).toEqual(['b', 'c']);
  });
});
