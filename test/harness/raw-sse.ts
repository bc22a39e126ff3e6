/**
 * An EventSource over a bare TCP socket whose reading can be paused: a client
 * that stops reading (a frozen tab behind a proxy), so the server's unsent
 * bytes pile up. Undoes the chunked transfer coding and keeps the event text.
 */
import { connect as tcp, type Socket } from 'node:net';
import { createWaiter } from './waiter.ts';

export interface RawSseClient {
  socket: Socket;
  /** The event-stream text read so far. */
  text(): string;
  /** Waits until `done()` holds, re-checked after every read. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  /** Stops reading from the socket. */
  pause(): void;
  /** Reads again. */
  resume(): void;
}

/** Opens GET http://127.0.0.1:<port><path> as an event stream, by hand. */
export function rawEventStream(port: number, path: string): Promise<RawSseClient> {
  const socket = tcp(port, '127.0.0.1');
  const waiter = createWaiter();
  let raw = Buffer.alloc(0);
  let headersDone = false;
  let events = '';

  // Moves whole chunks of the chunked body from `raw` to `events`.
  const dechunk = () => {
    for (;;) {
      const eol = raw.indexOf('\r\n');
      if (eol < 0) return;
      const size = parseInt(raw.subarray(0, eol).toString('latin1'), 16);
      if (raw.length < eol + 2 + size + 2) return;
      events += raw.subarray(eol + 2, eol + 2 + size).toString('utf8');
      raw = raw.subarray(eol + 2 + size + 2);
    }
  };

  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk) => {
      raw = Buffer.concat([raw, chunk]);
      if (!headersDone) {
        const end = raw.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = raw.subarray(0, end).toString('latin1');
        raw = raw.subarray(end + 4);
        if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(`stream refused: ${head.split('\r\n')[0]}`));
        if (!/^transfer-encoding: *chunked/im.test(head)) return reject(new Error('expected a chunked event stream'));
        headersDone = true;
        resolve(client);
      }
      dechunk();
      waiter.wake();
    });
    socket.once('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`));
    const client: RawSseClient = {
      socket,
      text: () => events,
      until: (done, timeoutMs = 5000) => waiter.until(done, timeoutMs, () => `raw event stream: condition not met within ${timeoutMs} ms (${events.length} chars read)`),
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    };
  });
}
