/**
 * One client interface over both transports, so one scenario suite runs over
 * each (the way crossws runs one suite per adapter): a WebSocket, or an
 * EventSource downlink with the POST uplink.
 */
import type { TestMesh } from './mesh.ts';
import { openSse } from './sse-client.ts';
import { token } from './tokens.ts';
import { createWaiter } from './waiter.ts';

export type Reply = Record<string, unknown>;

export interface TransportClient {
  /** The auth reply's fields (uid, connection). */
  auth: Reply;
  /** Sends one op frame and resolves with its reply. */
  request(frame: Record<string, unknown>): Promise<Reply>;
  /** Message texts received so far, in order (the `d` string, or the connmix/envelope JSON). */
  messages: string[];
  /** Waits until `count` messages arrived; returns them. */
  messagesUntil(count: number, timeoutMs?: number): Promise<string[]>;
  /** Waits for a server event other than a message (`expired`, `join`, …). */
  notice(event: string, timeoutMs?: number): Promise<Reply>;
  /** Resolves with the close code and reason the server ended the connection with. */
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** Refused at open: the error code, as either transport reports it. */
export class OpenRefused extends Error {
  constructor(readonly code: string) {
    super(`refused: ${code}`);
  }
}

export interface OpenOptions {
  claims?: Record<string, unknown>;
  /** The raw token to use instead of one minted for the uid. */
  jwt?: string;
  /** Extra query string on the connect URL (e.g. format=envelope). */
  query?: string;
}

export type TransportName = 'websocket' | 'sse';

/** Opens an authenticated client over `transport`. */
export async function openClient(transport: TransportName, mesh: TestMesh, uid: string, options: OpenOptions = {}): Promise<TransportClient> {
  const jwt = options.jwt ?? (await token(uid, options.claims));
  return transport === 'websocket' ? openWs(mesh, jwt, options.query) : openSseClient(mesh, jwt, options.query);
}

async function openWs(mesh: TestMesh, jwt: string, query = ''): Promise<TransportClient> {
  const ws = await mesh.connect(query);
  const auth = await ws.request({ op: 'auth', token: jwt });
  if (auth.success !== true) {
    ws.close();
    throw new OpenRefused(auth.reason as string);
  }
  // Over a WebSocket everything is a text frame: replies and server notices are told apart by shape.
  const NOTICES = ['expired', 'join', 'leave'];
  const isMessage = (_text: string, frame: unknown) =>
    typeof frame !== 'object' || frame === null || !(('op' in frame && ('success' in frame || (frame as Reply).op === 'pong')) || NOTICES.includes((frame as Reply).event as string));
  const messages = (): string[] => ws.texts.filter((t, i) => isMessage(t, ws.frames[i]));
  const client: TransportClient = {
    auth,
    request: (frame) => ws.request(frame),
    get messages() {
      return messages();
    },
    async messagesUntil(count, timeoutMs = 10_000) {
      await ws.until(() => messages().length >= count, timeoutMs);
      return messages();
    },
    async notice(event, timeoutMs = 10_000) {
      return (await ws.next((f) => typeof f === 'object' && f.event === event, timeoutMs)) as Reply;
    },
    closed: ws.closed,
    close: () => ws.close(),
  };
  return client;
}

async function openSseClient(mesh: TestMesh, jwt: string, query = ''): Promise<TransportClient> {
  // Refusals come as an HTTP status before any stream: ask once with fetch to read the code.
  const url = `${mesh.url}/v1/sse${query ? `?${query}` : ''}`;
  const probe = await fetch(url, { headers: { authorization: `Bearer ${jwt}` } });
  if (probe.status !== 200) throw new OpenRefused(((await probe.json()) as { code: string }).code);
  await probe.body?.cancel();
  const sse = openSse(url, { authorization: `Bearer ${jwt}` }, ['reply', 'join', 'leave']);
  const session = await sse.session();
  const waiter = createWaiter();
  let closeInfo: { code: number; reason: string } | undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    sse.source.addEventListener('close', (e) => {
      closeInfo = JSON.parse(e.data) as { code: number; reason: string };
      resolve(closeInfo);
      waiter.wake();
    }),
  );
  sse.source.addEventListener('message', () => waiter.wake());
  const auth = JSON.parse(sse.events.find((e) => e.type === 'session')!.data) as Reply;
  return {
    auth,
    async request(frame) {
      const res = await fetch(`${mesh.url}/v1/sse/${session}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
        body: JSON.stringify(frame),
      });
      return (await res.json()) as Reply;
    },
    get messages() {
      return sse.messages();
    },
    async messagesUntil(count, timeoutMs = 10_000) {
      await waiter.until(
        () => {
          if (sse.messages().length >= count) return true;
          if (closeInfo) throw new Error(`stream closed (${closeInfo.code} ${closeInfo.reason}) while waiting`);
          return false;
        },
        timeoutMs,
        () => `${sse.messages().length} of ${count} messages within ${timeoutMs} ms`,
      );
      return sse.messages();
    },
    async notice(event, timeoutMs = 10_000) {
      return JSON.parse((await sse.next((e) => e.type === event, timeoutMs)).data) as Reply;
    },
    closed,
    close: () => sse.close(),
  };
}
