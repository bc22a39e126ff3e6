/**
 * An instance that stalls longer than MESH_INSTANCE_TTL (a paused VM, a long GC,
 * SIGSTOP) is taken for dead: the others reap its connections and say they left.
 * When it wakes up, its clients are still connected to it, so it writes them all
 * again — connections, channels, the watches of its presence subscribers and what
 * its Pusher members said about themselves — and the cluster's state is true again.
 */
import { expect, test } from 'bun:test';
import { startCluster, type Instance } from './harness/cluster.ts';
import { pusherClient, type TestPusherClient } from './harness/pusher.ts';
import { pollUntil } from './harness/waiter.ts';
import type { Frame } from './harness/ws-client.ts';

const KEY = 'stalled-instance-api-key-0123456789';
const APP = { id: '31', key: 'stall-key', secret: 'stall-secret-0123456789' };
const { instances } = await startCluster(['bun', 'bun'], {
  env: { MESH_INSTANCE_TTL: '3s', MESH_HEARTBEAT: '1s', MESH_API_KEY: KEY, PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` },
});
const [A, B] = instances as [Instance, Instance];

const isEvent = (event: string, uid: string) => (f: Frame) => typeof f === 'object' && f.event === event && f.channel === 'room_stall' && f.uid === uid;
const user = async (on: Instance, uid: string) => (await (await fetch(`${on.url}/v1/mesh/users/${uid}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { online: boolean; connections: { channels: string[] }[] };
type Members = { get(id: string): { info: unknown } | null };
const membersOf = (c: TestPusherClient, channel: string) => (c.pusher.channel(channel) as unknown as { members: Members }).members;

test('an instance stalled past the TTL is taken for dead, then writes again everything its clients hold: connections, channels, watches, what members said', async () => {
  const watcherA = await A.login('stall-watch-a');
  expect(await watcherA.request({ op: 'subscribe', channel: 'room_stall', presence: true })).toMatchObject({ success: true });
  const watcherB = await B.login('stall-watch-b');
  expect(await watcherB.request({ op: 'subscribe', channel: 'room_stall', presence: true })).toMatchObject({ success: true });
  const member = await B.login('stall-1');
  await member.request({ op: 'subscribe', args: ['room_stall'] });
  await watcherA.next(isEvent('join', 'stall-1'), 10_000);
  const ann = await pusherClient(B.port, APP, { member: { user_id: 'ann', user_info: { name: 'Ann' } } });
  expect(await ann.subscribe('presence-stall')).toEqual({ ok: true });

  B.child.kill('SIGSTOP');
  try {
    // Silent past the TTL: A reaps it, and its users leave.
    await watcherA.next(isEvent('leave', 'stall-1'), 20_000);
    expect((await user(A, 'stall-1')).online).toBe(false);
  } finally {
    B.child.kill('SIGCONT');
  }

  // Awake: its connections are written again, and their joins go out again.
  await watcherA.next(isEvent('join', 'stall-1'), 20_000);
  await pollUntil(async () => (await user(A, 'stall-1')).connections[0]?.channels.join() === 'room_stall', 10_000, 'stall-1 and its channel listed again');
  // Its presence subscriber's watch too: a join made elsewhere now reaches it.
  const late = await A.login('stall-late');
  await late.request({ op: 'subscribe', args: ['room_stall'] });
  await watcherB.next(isEvent('join', 'stall-late'), 10_000);
  // And the Pusher member, with what it said about itself.
  const bob = await pusherClient(A.port, APP, { member: { user_id: 'bob' } });
  expect(await bob.subscribe('presence-stall')).toEqual({ ok: true });
  expect(membersOf(bob, 'presence-stall').get('ann')?.info).toEqual({ name: 'Ann' });

  for (const c of [watcherA, watcherB, member, late]) c.close();
  for (const c of [ann, bob]) c.close();
}, 60_000);
