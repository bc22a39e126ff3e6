/**
 * An HTTP balancer with no stickiness: each request goes to the next upstream in
 * turn (responses stream through, so an SSE stream works through it), skipping
 * one that refuses connections. Records which upstream took each request.
 */
export interface RoundRobin {
  url: string;
  /** Method, path and the upstream's index, for every request so far. */
  log: { method: string; path: string; upstream: number }[];
  stop(): void;
}

/** Starts the balancer in front of `upstreams` (base URLs). */
export function roundRobin(upstreams: string[]): RoundRobin {
  let next = 0;
  const log: RoundRobin['log'] = [];
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
      // An upstream that refuses the connection (it died) is skipped, as a balancer's health check would take it out.
      for (let tries = 0; ; tries++) {
        const upstream = next++ % upstreams.length;
        try {
          const response = await fetch(`${upstreams[upstream]}${url.pathname}${url.search}`, { method: request.method, headers: request.headers, body, redirect: 'manual' });
          log.push({ method: request.method, path: url.pathname, upstream });
          return response;
        } catch (err) {
          if (tries + 1 >= upstreams.length) throw err;
        }
      }
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, log, stop: () => server.stop(true) };
}
