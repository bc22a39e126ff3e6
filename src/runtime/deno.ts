/** The Deno adapter: Deno.serve with Hono's Deno WebSocket upgrade. */
import { getConnInfo } from 'hono/deno';
import { upgradeWebSocket } from 'hono/deno';
import type { RuntimeAdapter } from './adapter.ts';
import { QueuedEventBody, onFirstSignal, StandardSocket, onUncaughtWeb, startModuleThread } from './common.ts';

// Only the few Deno APIs used here, so the project type-checks without Deno's own typings.
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: (request: Request, info: unknown) => Response | Promise<Response>,
  ): { finished: Promise<void>; shutdown(): Promise<void> };
  addSignalListener(signal: 'SIGINT' | 'SIGTERM', handler: () => void): void;
  version: { deno: string };
};

export const runtime: RuntimeAdapter = {
  name: 'deno',
  version: Deno.version.deno,
  upgradeWebSocket,
  upgradesLate: false,
  socket: (ws) => new StandardSocket(ws.raw as WebSocket),
  remoteAddress: (c) => getConnInfo(c).remote.address,
  keepOpen: () => {},
  eventBody: (owner, request) => new QueuedEventBody(owner, request),
  serve(fetch, options) {
    return new Promise((resolve) => {
      const server = Deno.serve(
        {
          port: options.port,
          hostname: options.hostname,
          onListen: ({ port }) => resolve({ port, stop: () => server.shutdown() }),
        },
        (request, info) => fetch(request, info),
      );
    });
  },
  startThread: startModuleThread,
  onShutdownSignal: (handler) => onFirstSignal((signal, fire) => Deno.addSignalListener(signal, fire), handler),
  onUncaught: onUncaughtWeb,
};
