/** The Node.js adapter: @hono/node-server with a `ws` WebSocketServer. */
import type { AddressInfo } from 'node:net';
import { serve, upgradeWebSocket } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Worker } from 'node:worker_threads';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RuntimeAdapter } from './adapter.ts';
import { QueuedEventBody, onFirstSignal, StandardSocket, onUncaughtProcess, workerThread } from './common.ts';

/** How long a cut-off socket may take to send its close frame and hear the answer before it is destroyed. */
const CUT_OFF_MS = 1000;

/** `ws`'s socket, which can stop reading. */
class NodeSocket extends StandardSocket {
  constructor(readonly ws: WebSocket) {
    super(ws);
  }
  cutOff(code: number, reason: string): void {
    this.ws.close(code, reason);
    this.ws.pause();
    setTimeout(() => this.ws.terminate(), CUT_OFF_MS).unref();
  }
}

export const runtime: RuntimeAdapter = {
  name: 'node',
  version: process.versions.node,
  upgradeWebSocket,
  upgradesLate: true,
  socket: (ws) => new NodeSocket(ws.raw as WebSocket),
  remoteAddress: (c) => getConnInfo(c).remote.address,
  // Node's requestTimeout and keep-alive timers do not cut a response in progress.
  keepOpen: () => {},
  eventBody: (owner, request) => new QueuedEventBody(owner, request),
  serve(fetch, options) {
    const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrame, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      const server = serve({ fetch, port: options.port, hostname: options.hostname, websocket: { server: wss } }, (info) => {
        resolve({
          port: (info as AddressInfo).port,
          stop: () =>
            new Promise<void>((done) => {
              for (const client of wss.clients) client.terminate();
              server.close(() => done());
              (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            }),
        });
      });
      server.once('error', reject);
    });
  },
  startThread(entry, data) {
    // Node runs our TypeScript through tsx (`--import tsx`), whose hooks a worker does not inherit: it registers them first.
    const source = entry.pathname.endsWith('.ts')
      ? `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(entry.href)});`
      : `await import(${JSON.stringify(entry.href)});`;
    return workerThread(new Worker(source, { eval: true, workerData: data }));
  },
  onShutdownSignal: (handler) => onFirstSignal((signal, fire) => process.once(signal, fire), handler),
  onUncaught: onUncaughtProcess,
};
