/** The Bun adapter: Bun.serve with Hono's Bun WebSocket handler plus backpressure settings. */
import type { ServerWebSocket } from 'bun';
import { getBunServer, getConnInfo, upgradeWebSocket, websocket } from 'hono/bun';
import type { RuntimeAdapter } from './adapter.ts';
import { onFirstSignal } from './common.ts';

export const runtime: RuntimeAdapter = {
  name: 'bun',
  upgradeWebSocket,
  socket(ws) {
    // Hono builds a new WSContext per event on Bun; the raw socket is the stable handle.
    const raw = ws.raw as ServerWebSocket<unknown>;
    return {
      send: (text) => void raw.send(text),
      close: (code, reason) => raw.close(code, reason),
      buffered: () => raw.getBufferedAmount(),
      topics: {
        subscribe: (topic) => raw.subscribe(topic),
        unsubscribe: (topic) => raw.unsubscribe(topic),
      },
    };
  },

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
        backpressureLimit: options.maxBuffered * 4 + (1 << 20),
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
