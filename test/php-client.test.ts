/**
 * clients/php, as a backend calls it: the real PHP CLI against a two-instance
 * cluster on a real Postgres. A WebSocket client on one instance sees what PHP
 * does through the other; the method names are GatewayClient's.
 */
import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { startCluster, type Instance } from './harness/cluster.ts';
import { hasPhp, runPhp } from './harness/php.ts';
import { ROOT } from './harness/process.ts';
import type { Frame } from './harness/ws-client.ts';

const KEY = 'php-client-key-of-32-characters!';
const CALL = join(ROOT, 'clients', 'php', 'examples', 'call.php');

describe.skipIf(!hasPhp)('the PHP client', async () => {
  const { instances } = await startCluster(['bun', 'node'], { env: { MESH_API_KEY: KEY } });
  const [A, B] = instances as [Instance, Instance];

  /** Calls a Pgmesh\Client method through B, as a php-fpm request would. */
  async function call(method: string, ...args: unknown[]): Promise<unknown> {
    const run = await runPhp(CALL, [method, JSON.stringify(args)], { MESH_URL: B.url, MESH_API_KEY: KEY });
    const answer = JSON.parse(run.stdout) as { result?: unknown; code?: string };
    if (run.status !== 0) throw Object.assign(new Error(run.stdout + run.stderr), answer);
    return answer.result;
  }
  const connectionOf = (frames: Frame[]) => (frames.find((f) => typeof f === 'object' && f.op === 'auth') as Record<string, string>).connection!;
  const joinOf = (uid: string) => (f: Frame) => typeof f === 'object' && f.event === 'join' && f.uid === uid;

  test('send to a user, a group, everyone, and to a group but the sender', async () => {
    const client = await A.login('php-1');
    const other = await A.login('php-2');
    for (const c of [client, other]) await c.request({ op: 'subscribe', args: ['@user', 'room_php'] });
    expect(await call('sendToUid', 'php-1', '{"event":"@user","data":{"msg":"Hello,World!"}}')).toBeNumber();
    expect(await client.next((f) => typeof f === 'object' && f.event === '@user')).toEqual({ event: '@user', data: { msg: 'Hello,World!' } });
    await call('sendToGroup', 'room_php', 'to the room');
    for (const c of [client, other]) await c.next((f) => f === 'to the room');
    await call('sendToGroup', 'room_php', 'not to php-1', [connectionOf(client.frames)]);
    await other.next((f) => f === 'not to php-1');
    await call('sendToAll', 'to all');
    for (const c of [client, other]) await c.next((f) => f === 'to all');
    expect(client.texts).not.toContain('not to php-1');
  });

  test('who is online and in which group; joinGroup and leaveGroup by client id', async () => {
    const watcher = await A.login('php-watch');
    await watcher.request({ op: 'subscribe', channel: 'room_who', presence: true });
    const client = await A.login('php-3');
    await client.request({ op: 'subscribe', args: ['room_who', '@user'] });
    await watcher.next(joinOf('php-3'));
    expect(await call('isUidOnline', 'php-3')).toBe(true);
    expect(await call('isUidOnline', 'nobody')).toBe(false);
    expect(await call('getClientIdByUid', 'php-3')).toEqual([connectionOf(client.frames)]);
    expect(await call('getUidListByGroup', 'room_who')).toEqual(['php-3', 'php-watch']);
    expect(await call('getClientCountByGroup', 'room_who')).toBe(2);

    const id = connectionOf(client.frames);
    await call('joinGroup', id, 'room_new');
    await call('sendToGroup', 'room_new', 'joined by PHP');
    await client.next((f) => f === 'joined by PHP');
    await call('leaveGroup', id, 'room_new');
    await call('sendToGroup', 'room_new', 'after leaving');
    await call('sendToUid', 'php-3', 'marker');
    await client.next((f) => f === 'marker');
    expect(client.texts).not.toContain('after leaving');
  });

  test('history, then closeClient', async () => {
    for (const d of ['one', 'two', 'three']) await call('sendToGroup', 'room_log', d);
    const history = (await call('history', 'room_log', 2)) as { messages: { data: string }[]; position: number };
    expect(history.messages.map((m) => m.data)).toEqual(['two', 'three']);
    const client = await A.login('php-4');
    await call('closeClient', connectionOf(client.frames), 'bye from PHP');
    expect(await client.closed).toEqual({ code: 4003, reason: 'bye from PHP' });
  });

  test('a wrong key is a MeshException with the stable code', async () => {
    const run = await runPhp(CALL, ['isUidOnline', '["x"]'], { MESH_URL: B.url, MESH_API_KEY: 'wrong-key-of-thirty-two-characters' });
    expect(run.status).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ code: 'ERR_BAD_API_KEY', status: 401 });
  });
});
