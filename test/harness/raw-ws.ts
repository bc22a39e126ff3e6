/**
 * A WebSocket client over a bare TCP socket whose reading can be paused: a
 * client that stops reading, as a stalled phone or a frozen tab does, so the
 * server's unread bytes pile up. Parses what it reads once resumed.
 */
import { connect as tcp, type Socket } from 'node:net';
import { createWaiter } from './waiter.ts';

export interface RawWsClient {
  socket: Socket;
  send(text: string): void;
  /** Waits until `done()` holds, re-checked after every frame read. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  /** Stops reading from the socket: the server's writes pile up. */
  pause(): void;
  /** Reads again, and resolves with the close frame's code and reason once it arrives (all text frames before it are in `texts`). */
  resumeUntilClose(timeoutMs: number): Promise<{ code: number; reason: string }>;
  texts: string[];
  /** Sends a close frame (1000) and ends the socket: a clean goodbye. */
  close(): void;
}

/** Opens a WebSocket to ws://127.0.0.1:<port><path> by hand. */
export function rawWebSocket(port: number, path: string): Promise<RawWsClient> {
  const socket = tcp(port, '127.0.0.1');
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  const texts: string[] = [];
  let onClose: ((c: { code: number; reason: string }) => void) | null = null;
  // A close frame that came before anyone waited for it (parsed while the socket was meant to be paused).
  let closeFrame: { code: number; reason: string } | null = null;
  let ended = false;
  const waiter = createWaiter();

  const parse = () => {
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 0x0f;
      let length = buffer[1]! & 0x7f;
      let at = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        at = 10;
      }
      if (buffer.length < at + length) return;
      const payload = buffer.subarray(at, at + length);
      buffer = buffer.subarray(at + length);
      if (opcode === 1) texts.push(payload.toString('utf8'));
      waiter.wake();
      if (opcode === 8) {
        closeFrame = { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
        onClose?.(closeFrame);
      }
    }
  };

  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('end', () => (ended = true));
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString();
        buffer = buffer.subarray(end + 4);
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
        upgraded = true;
        resolve(client);
      }
      parse();
    });
    socket.once('connect', () => {
      const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    const client: RawWsClient = {
      socket,
      texts,
      send(text) {
        const payload = Buffer.from(text, 'utf8');
        const mask = Buffer.from(crypto.getRandomValues(new Uint8Array(4)));
        const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
        socket.write(Buffer.concat([header, mask, masked]));
      },
      close() {
        const mask = Buffer.from(crypto.getRandomValues(new Uint8Array(4)));
        const payload = Buffer.from([0x03, 0xe8]).map((b, i) => b ^ mask[i % 4]!);
        socket.end(Buffer.concat([Buffer.from([0x88, 0x82]), mask, payload]));
      },
      until: (done, timeoutMs = 5000) => waiter.until(done, timeoutMs, () => `raw client: condition not met within ${timeoutMs} ms`),
      pause: () => socket.pause(),
      resumeUntilClose(timeoutMs) {
        return new Promise((done, fail) => {
          if (closeFrame !== null) return done(closeFrame);
          const timer = setTimeout(() => fail(new Error(`no close frame within ${timeoutMs} ms (${texts.length} frames read${ended ? ', then the socket ended' : ''})`)), timeoutMs);
          onClose = (c) => (clearTimeout(timer), done(c));
          socket.resume();
          parse();
        });
      },
    };
  });
}
