/** The Bun adapter: Bun.serve with Hono's Bun WebSocket handler plus backpressure settings. */
import type { ServerWebSocket } from 'bun';
import { getBunServer, getConnInfo, upgradeWebSocket, websocket } from 'hono/bun';
import type { RawSocket, RuntimeAdapter } from './adapter.ts';
import { onFirstSignal } from './common.ts';

export const runtime: RuntimeAdapter = {
  name: 'bun',
  upgradeWebSocket,
  // Hono builds a new WSContext per event on Bun; the raw socket is the stable handle.
  socket: (ws) => new BunSocket(ws.raw as ServerWebSocket<unknown>),

  remoteAddress: (c) => getConnInfo(c).remote.address,
  keepOpen: (c) => {
    getBunServer<{ timeout(req: Request, seconds: number): void }>(c)?.timeout(c.req.raw, 0);
  },
  async serve(fetch, options) {
    const server = Bun.serve({
      port: options.port,
      hostname: options.hostname,
      fetch,
      idleTimeout: 120,
      websocket: {
        ...websocket,
        maxPayloadLength: options.maxFrame,
        // pgmesh closes a slow consumer itself at maxBuffered, with 4008 after the data already
        // queued (the hub checks natively fanned-out sockets a few times a second). Bun's own
        // limit is the hard stop behind it, for a burst between two checks: it cuts with no close frame.
        backpressureLimit: Math.max(options.maxBuffered * 4, options.maxBuffered + (16 << 20)),
        closeOnBackpressureLimit: true,
        idleTimeout: 120,
        sendPings: true,
      },
    });
    return {
      port: server.port!,
      stop: () => server.stop(true),
      // Bun's topic publish frames and writes in native code, once per message.
      broadcast: (topic, frame) => void server.publish(topic, frame),
    };
  },
  onShutdownSignal: (handler) => onFirstSignal((signal, fire) => process.once(signal, fire), handler),
};

/** Bun's socket as a RawSocket: a class, so an idle connection carries no closures. */
class BunSocket implements RawSocket {
  readonly topics: NonNullable<RawSocket['topics']>;
  constructor(readonly raw: ServerWebSocket<unknown>) {
    this.topics = this;
  }
  send(text: string): void {
    this.raw.send(text);
  }
  close(code: number, reason: string): void {
    this.raw.close(code, reason);
  }
  buffered(): number {
    return this.raw.getBufferedAmount();
  }
  subscribe(topic: string): void {
    this.raw.subscribe(topic);
  }
  unsubscribe(topic: string): void {
    this.raw.unsubscribe(topic);
  }
}
