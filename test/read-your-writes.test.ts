/**
 * Read-your-writes for presence: once a client holds its `auth` or `subscribe`
 * reply (or Pusher's subscription_succeeded), every instance's server API already
 * says so. A backend the client calls right after connecting — GatewayWorker's
 * `bindUid`, then `isUidOnline` — sees the user online, whichever instance it asks.
 * Two processes (Node and Bun) on one real Postgres; no polling: each read is one.
 */
import { describe, expect, test } from 'bun:test';
import { startCluster } from './harness/cluster.ts';
import { token } from './harness/tokens.ts';
import { connect, type Frame } from './harness/ws-client.ts';
import { channelAuth } from '../src/pusher/signing.ts';

const APP = { id: '31', key: 'ryw-key', secret: 'ryw-secret-0123456789' };
const { instances } = await startCluster(['node', 'bun'], { env: { PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` } });
const [A, B] = instances as [(typeof instances)[0], (typeof instances)[0]];
const api = async (base: string, path: string) => (await fetch(`${base}/v1/mesh${path}`)).json() as Promise<Record<string, unknown>>;

describe('read-your-writes', () => {
  test('20 clients in turn: at its auth reply the user is online on the other instance; at its subscribe reply the channel lists it there', async () => {
    for (let i = 0; i < 20; i++) {
      const uid = `ryw-${i}`;
      const client = await connect(`${A.url.replace('http', 'ws')}/v1/ws`);
      expect(await client.request({ op: 'auth', token: await token(uid) })).toMatchObject({ success: true });
      expect(await api(B.url, `/users/${uid}`)).toMatchObject({ online: true });
      expect(await client.request({ op: 'subscribe', channels: [`ryw-room-${i}`] })).toMatchObject({ success: true });
      expect(await api(B.url, `/channels/ryw-room-${i}`)).toMatchObject({ channel: `ryw-room-${i}`, subscribers: 1, users: 1 });
      client.close();
    }
  }, 60_000);

  test("Pusher: at subscription_succeeded the other instance's presence has the member", async () => {
    for (let i = 0; i < 10; i++) {
      const socket = await connect(`${A.url.replace('http', 'ws')}/app/${APP.key}`);
      const event = (name: string) => (f: Frame) => typeof f === 'object' && f.event === name;
      const established = await socket.next(event('pusher:connection_established'));
      const socketId = JSON.parse((established as { data: string }).data).socket_id as string;
      const channelData = JSON.stringify({ user_id: `member-${i}` });
      socket.send({ event: 'pusher:subscribe', data: { channel: 'presence-ryw', auth: channelAuth(APP, socketId, 'presence-ryw', channelData), channel_data: channelData } });
      await socket.next(event('pusher_internal:subscription_succeeded'));
      const users = (await fetchPusherUsers(B.url)).map((u) => u.id);
      expect(users).toContain(`member-${i}`);
      socket.close();
    }
  }, 60_000);
});

/** The Pusher HTTP API's member list of presence-ryw, signed as the server libraries sign. */
async function fetchPusherUsers(base: string): Promise<{ id: string }[]> {
  const { default: Pusher } = await import('pusher');
  const url = new URL(base);
  const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: url.hostname, port: url.port, useTLS: false });
  const response = await sdk.get({ path: '/channels/presence-ryw/users' });
  return ((await response.json()) as { users: { id: string }[] }).users;
}
