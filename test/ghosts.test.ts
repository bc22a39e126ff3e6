/**
 * Presence never keeps a connection that is gone. Clients that authenticate, subscribe (plainly and
 * with presence) and drop their socket at once — so the drop lands while the token is being checked,
 * or while a subscription awaits the database — leave nobody online, no channel occupied and no
 * member behind, on a real Postgres.
 */
import { describe, expect, test } from 'bun:test';
import { startTestMesh } from './harness/mesh.ts';
import { freshDatabase } from './harness/postgres.ts';
import { rawWebSocket } from './harness/raw-ws.ts';
import { token } from './harness/tokens.ts';
import { pollUntil } from './harness/waiter.ts';
import { channelAuth } from '../src/pusher/signing.ts';
import { storedChannel } from '../src/pusher/apps.ts';
import type { Frame } from './harness/ws-client.ts';

const APP = { id: '9', key: 'ghost-key', secret: 'ghost-secret-0123456789' };
const mesh = await startTestMesh({ DATABASE_URL: await freshDatabase(), PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` });

describe('connections that drop at once', () => {
  test('300 clients authenticate, subscribe and vanish without a close frame: afterwards nobody is online and no channel is occupied', async () => {
    const tokens = await Promise.all(Array.from({ length: 300 }, (_, i) => token(`ghost-${i}`)));
    for (let round = 0; round < 6; round++) {
      await Promise.all(
        tokens.slice(round * 50, round * 50 + 50).map(async (jwt, i) => {
          const client = await rawWebSocket(mesh.port, '/v1/ws');
          client.send(JSON.stringify({ op: 'auth', token: jwt }));
          client.send(JSON.stringify({ op: 'subscribe', channels: ['@user', `room-${i % 5}`] }));
          client.send(JSON.stringify({ op: 'subscribe', channel: 'lobby', presence: true }));
          // Gone at once, or a moment later: the drop lands at every point of the ops in flight.
          if (i % 3 === 0) client.socket.destroy();
          else setTimeout(() => client.socket.destroy(), i % 7);
        }),
      );
    }
    await pollUntil(async () => [...mesh.hub.sessions()].length === 0, 10_000, 'every session torn down');
    await mesh.cluster.flush();
    const api = async (path: string) => (await fetch(`${mesh.url}/v1/mesh${path}`)).json() as Promise<Record<string, unknown>>;
    expect(await api('/users')).toMatchObject({ users: [], count: 0 });
    expect(await api('/channels')).toMatchObject({ channels: [], count: 0 });
    expect((await mesh.cluster.members('lobby')).uids).toEqual([]);
    for (const uid of ['ghost-0', 'ghost-1', 'ghost-299']) expect(await api(`/users/${uid}`)).toMatchObject({ online: false, connections: [] });
  }, 60_000);

  test('Pusher: a presence subscribe and an unsubscribe sent together leave the socket out of the channel, and out of its members', async () => {
    const socket = await mesh.connect('', `/app/${APP.key}`);
    const event = (name: string) => (f: Frame) => typeof f === 'object' && f.event === name;
    const established = await socket.next(event('pusher:connection_established'));
    const socketId = JSON.parse((established as { data: string }).data).socket_id as string;
    const channelData = JSON.stringify({ user_id: 'quick-leaver' });
    socket.send({ event: 'pusher:subscribe', data: { channel: 'presence-quick', auth: channelAuth(APP, socketId, 'presence-quick', channelData), channel_data: channelData } });
    socket.send({ event: 'pusher:unsubscribe', data: { channel: 'presence-quick' } });
    // Frames run in order: once this one is answered, the two before it are done.
    socket.send({ event: 'pusher:subscribe', data: { channel: 'marker' } });
    await socket.next((f) => event('pusher_internal:subscription_succeeded')(f) && (f as { channel: string }).channel === 'marker');
    await mesh.cluster.flush();
    expect((await mesh.cluster.members(storedChannel(APP, 'presence-quick'))).uids).toEqual([]);
    const session = mesh.hub.session(socketId)!;
    expect(session.isSubscribed(storedChannel(APP, 'presence-quick'))).toBe(false);
    expect(session.isSubscribed(storedChannel(APP, 'marker'))).toBe(true);
  });
});
