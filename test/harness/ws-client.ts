/**
 * A WebSocket test client over a real socket. Every frame received is kept;
 * `next()` waits for the next frame matching a predicate, with a deadline,
 * so tests wait for events instead of sleeping.
 */

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
  const waiters = new Set<() => void>();
  const wakeAll = () => {
    for (const w of [...waiters]) w();
  };
  /** Resolves on the next frame or close, or after `ms`. */
  const nextEvent = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  let closeInfo: { code: number; reason: string } | null = null;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.addEventListener('close', (e) => {
      closeInfo = { code: e.code, reason: e.reason };
      resolve(closeInfo);
      wakeAll();
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
    wakeAll();
  });

  const next = async (match: (frame: Frame) => boolean, wait = 5000): Promise<Frame> => {
    const deadline = Date.now() + wait;
    for (;;) {
      for (let i = taken; i < frames.length; i++) {
        if (!consumed.has(i) && match(frames[i]!)) {
          consumed.add(i);
          while (consumed.has(taken)) taken++;
          return frames[i]!;
        }
      }
      if (closeInfo) throw new Error(`socket closed (${closeInfo.code} ${closeInfo.reason}) while waiting; got ${JSON.stringify(texts.slice(-5))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${wait} ms; last frames: ${JSON.stringify(texts.slice(-5))}`);
      await nextEvent(left);
    }
  };

  const until = async (done: () => boolean, wait = 5000): Promise<void> => {
    const deadline = Date.now() + wait;
    while (!done()) {
      if (closeInfo) throw new Error(`socket closed (${closeInfo.code} ${closeInfo.reason}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`condition not met within ${wait} ms (${frames.length} frames received)`);
      await nextEvent(left);
    }
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
