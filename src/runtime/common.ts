/** Pieces two or three runtime adapters share; still runtime code, so it lives here. */
import type { RawSocket } from './adapter.ts';

/** A WHATWG-style socket (Deno's WebSocket, and `ws` on Node, which has the same surface). */
export function standardSocket(raw: { send(data: string): void; close(code?: number, reason?: string): void; bufferedAmount: number }): RawSocket {
  return {
    send: (text) => raw.send(text),
    close: (code, reason) => raw.close(code, reason),
    buffered: () => raw.bufferedAmount,
  };
}

/** Calls `handler` once, on whichever of SIGINT and SIGTERM comes first (Fly sends SIGINT, then SIGTERM). */
export function onFirstSignal(listen: (signal: 'SIGINT' | 'SIGTERM', fire: () => void) => void, handler: (signal: string) => void): void {
  let fired = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    listen(signal, () => {
      if (fired) return;
      fired = true;
      handler(signal);
    });
  }
}
