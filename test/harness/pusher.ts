/**
 * pusher-js (its Node build) as a test client, nothing of ours on its side:
 * private and presence channels are authorised by the official `pusher` server
 * library, as an app's /broadcasting/auth does, and so is sign-in.
 */
import PusherClient from 'pusher-js';
import PusherServer from 'pusher';
import { createWaiter } from './waiter.ts';

export interface PusherAppKeys {
  id: string;
  key: string;
  secret: string;
}

export interface Member {
  user_id: string;
  user_info?: Record<string, unknown>;
}

/** Who a client signs in as (the user_data the app's user authentication endpoint signs). */
export interface SignIn {
  id: string;
  [field: string]: unknown;
}

export interface Received {
  channel: string;
  event: string;
  data: unknown;
}

/** The official server library aimed at a pgmesh on `port`; with `masterKey` (base64, 32 bytes) it encrypts private-encrypted- channels. */
export function pusherServer(port: number, app: PusherAppKeys, masterKey?: string): PusherServer {
  return new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(port), useTLS: false, ...(masterKey && { encryptionMasterKeyBase64: masterKey }) });
}

export type TestPusherClient = Awaited<ReturnType<typeof pusherClient>>;

/**
 * A connected pusher-js client on `port`; `member` is who it is on presence channels and,
 * with `signin`, who it signs in as. A channel whose name contains "forged" gets a wrong signature.
 */
export async function pusherClient(port: number, app: PusherAppKeys, options: { member?: Member; signin?: SignIn; masterKey?: string } = {}) {
  const sdk = pusherServer(port, app, options.masterKey);
  const pusher = new PusherClient(app.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      transport: 'ajax',
      endpoint: 'unused',
      customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: (error: Error | null, data: { auth: string } | null) => void) =>
        callback(
          null,
          channelName.includes('forged') ? { auth: `${app.key}:${'0'.repeat(64)}` } : channelName.startsWith('presence-') ? sdk.authorizeChannel(socketId, channelName, options.member!) : sdk.authorizeChannel(socketId, channelName),
        ),
    },
    userAuthentication: {
      transport: 'ajax',
      endpoint: 'unused',
      customHandler: ({ socketId }: { socketId: string }, callback: (error: Error | null, data: { auth: string; user_data: string } | null) => void) =>
        callback(null, sdk.authenticateUser(socketId, options.signin as { id: string })),
    },
  });
  const waiter = createWaiter();
  const channelEvents: Received[] = [];
  const userEvents: Received[] = [];
  const states: string[] = [];
  // Every frame that arrives may be what a test waits for.
  pusher.connection.bind('message', () => waiter.wake());
  pusher.connection.bind('state_change', ({ current }: { current: string }) => {
    states.push(current);
    waiter.wake();
  });
  pusher.user.bind_global((event: string, data: unknown) => {
    userEvents.push({ channel: '', event, data });
    waiter.wake();
  });
  const subscribe = (name: string) =>
    new Promise<{ ok: boolean; error?: unknown }>((resolve) => {
      const channel = pusher.subscribe(name);
      channel.bind_global((event: string, data: unknown) => {
        channelEvents.push({ channel: name, event, data });
        waiter.wake();
      });
      channel.bind('pusher:subscription_succeeded', () => resolve({ ok: true }));
      channel.bind('pusher:subscription_error', (error: unknown) => resolve({ ok: false, error }));
    });
  await new Promise<void>((resolve) => pusher.connection.bind('connected', () => resolve()));
  return {
    pusher,
    socketId: () => pusher.connection.socket_id,
    subscribe,
    /** The app's events on a channel (pusher's own left out). */
    events: (channel: string) => channelEvents.filter((e) => e.channel === channel && !e.event.startsWith('pusher')),
    /** What reached the signed-in user (sendToUser). */
    userEvents: () => userEvents,
    /** Every connection state it went through. */
    states,
    until: (done: () => boolean, timeoutMs = 10_000) => waiter.until(done, timeoutMs, () => `pusher-js condition not met; states ${states.join(',')}; events: ${JSON.stringify(channelEvents.slice(-5))}`),
    close: () => pusher.disconnect(),
  };
}
