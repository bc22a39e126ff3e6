/**
 * A TCP proxy in front of Postgres that can freeze the connections it carries:
 * bytes stop flowing both ways but no FIN or RST is sent — a half-open socket,
 * as a dead NAT entry or a silently failed link leaves behind.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Stops forwarding on every connection open now; new connections pass. */
  freezeOpenConnections(): number;
  /** Stops forwarding the server's answers on every connection open now (requests still pass): answers lost after the work is done. */
  dropRepliesOnOpenConnections(): number;
  /** Sends new connections to another port from now on (a balancer that took a dead upstream out). */
  retarget(port: number): void;
  close(): Promise<void>;
}

/** Proxies 127.0.0.1:<random port> to `targetPort`. */
export function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean; deaf: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream, frozen: false, deaf: false };
    pairs.add(pair);
    client.on('data', (d) => pair.frozen || upstream.write(d));
    upstream.on('data', (d) => pair.frozen || pair.deaf || client.write(d));
    const end = () => {
      if (pair.frozen || pair.deaf) return; // a frozen link says nothing, ever
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        freezeOpenConnections() {
          let n = 0;
          for (const pair of pairs) if (!pair.frozen) (pair.frozen = true), n++;
          return n;
        },
        retarget(port) {
          targetPort = port;
        },
        dropRepliesOnOpenConnections() {
          let n = 0;
          for (const pair of pairs) if (!pair.deaf) (pair.deaf = true), n++;
          return n;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const { client, upstream } of pairs) client.destroy(), upstream.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * Proxies 127.0.0.1:<random port> to `targetPort`, holding every chunk `delayMs` in each
 * direction (in order): a database in another region. With a function, each chunk is held
 * as long as it says (a jittery link), still in order.
 */
export function startLatencyProxy(targetPort: number, delayMs: number | (() => number)): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const delayOf = typeof delayMs === 'number' ? () => delayMs : delayMs;
  const delayed = (from: Socket, to: Socket) => {
    let last = 0;
    from.on('data', (chunk) => {
      const at = Math.max(Date.now() + delayOf(), last);
      last = at;
      // The distance itself; a chunk due already (the clock moved on while this ran) goes at once.
      setTimeout(() => to.write(chunk), Math.max(0, at - Date.now()));
    });
  };
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    delayed(client, upstream);
    delayed(upstream, client);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}
