/** Pieces two or three runtime adapters share; still runtime code, so it lives here. */
import type { RawSocket } from './adapter.ts';

interface StandardWebSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  bufferedAmount: number;
}

/** A WHATWG-style socket (Deno's WebSocket, and `ws` on Node, which has the same surface); a class, so no closures per connection. */
export class StandardSocket implements RawSocket {
  constructor(readonly raw: StandardWebSocket) {}
  send(text: string): void {
    this.raw.send(text);
  }
  close(code: number, reason: string): void {
    this.raw.close(code, reason);
  }
  buffered(): number {
    return this.raw.bufferedAmount;
  }
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
