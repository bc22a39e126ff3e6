/** The Node.js adapter: @hono/node-server with a `ws` WebSocketServer. */
import type { AddressInfo } from 'node:net';
import { serve, upgradeWebSocket } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RuntimeAdapter } from './adapter.ts';
import { QueuedEventBody, onFirstSignal, StandardSocket, onUncaughtProcess } from './common.ts';

export const runtime: RuntimeAdapter = {
  name: 'node',
  upgradeWebSocket,
  socket: (ws) => new StandardSocket(ws.raw as WebSocket),
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
  onShutdownSignal: (handler) => onFirstSignal((signal, fire) => process.once(signal, fire), handler),
  onUncaught: onUncaughtProcess,
};
