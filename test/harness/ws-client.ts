/**
 * A WebSocket test client over a real socket. Every frame received is kept;
 * `next()` waits for the next frame matching a predicate, with a deadline,
 * so tests wait for events instead of sleeping.
 */
import { createWaiter } from './waiter.ts';

export type Frame = Record<string, unknown> | string;

export interface WsClient {
  socket: WebSocket;
  /** Every text frame received so far, JSON-decoded where it is JSON. */
  frames: Frame[];
  /** The raw text of every frame received so far. */
  texts: string[];
  send(frame: unknown): void;
  /** Sends a frame and waits for its reply (the next frame whose `op` matches). */
  request(frame: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Waits for the first frame, not yet taken, that matches. */
  next(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Waits until `done()` (re-checked after every frame) returns true. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves with the close event's code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** Opens a WebSocket and resolves once it is open. */
export function connect(url: string, timeoutMs = 5000): Promise<WsClient> {
  const socket = new WebSocket(url);
  const frames: Frame[] = [];
  const texts: string[] = [];
  let taken = 0; // frames before this index were handed out by next()
  const consumed = new Set<number>();
  const waiter = createWaiter();
  let closeInfo: { code: number; reason: string } | null = null;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.addEventListener('close', (e) => {
      closeInfo = { code: e.code, reason: e.reason };
      resolve(closeInfo);
      waiter.wake();
    });
  });
  socket.addEventListener('message', (e) => {
    const text = typeof e.data === 'string' ? e.data : new TextDecoder().decode(e.data as ArrayBuffer);
    texts.push(text);
    let frame: Frame;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = text;
    }
    frames.push(frame);
    waiter.wake();
  });

  /** Waits for `done()`; fails early if the socket closes. */
  const until = (done: () => boolean, wait = 5000): Promise<void> =>
    waiter.until(
      () => {
        if (done()) return true;
        if (closeInfo) throw new Error(`socket closed (${closeInfo.code} ${closeInfo.reason}) while waiting; last frames: ${JSON.stringify(texts.slice(-5))}`);
        return false;
      },
      wait,
      () => `condition not met within ${wait} ms; last frames: ${JSON.stringify(texts.slice(-5))}`,
    );

  const next = async (match: (frame: Frame) => boolean, wait = 5000): Promise<Frame> => {
    let found = -1;
    await until(() => {
      for (let i = taken; i < frames.length; i++) {
        if (!consumed.has(i) && match(frames[i]!)) {
          found = i;
          return true;
        }
      }
      return false;
    }, wait);
    consumed.add(found);
    while (consumed.has(taken)) taken++;
    return frames[found]!;
  };

  const client: WsClient = {
    until,
    socket,
    frames,
    texts,
    send: (frame) => socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    async request(frame, wait) {
      client.send(frame);
      const op = frame.op === 'ping' ? 'pong' : frame.op;
      const isReply = (f: Frame) => typeof f === 'object' && f.op === op && (op === 'pong' || 'success' in f);
      return (await next(isReply, wait)) as Record<string, unknown>;
    },
    next,
    closed,
    close: () => socket.close(),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`could not connect to ${url}`)), timeoutMs);
    socket.addEventListener('open', () => {
      clearTimeout(timer);
      resolve(client);
    });
    socket.addEventListener('error', () => {
      clearTimeout(timer);
      reject(new Error(`WebSocket error connecting to ${url}`));
    });
  });
}

/** Matches a delivered message event on `channel` (connmix event frame or envelope). */
export const onChannel = (channel: string) => (f: Frame) => typeof f === 'object' && 'event' in f && f.channel === channel;
