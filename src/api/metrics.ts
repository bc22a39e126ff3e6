/** GET /metrics: the instance's metrics in Prometheus text format. */
import { Hono } from 'hono';
import type { Registry } from 'prom-client';

/** The metrics route; mount it behind the server-API guard, or alone on a private port. */
export function metricsRoute(registry: Registry): Hono {
  const app = new Hono();
  app.get('/metrics', async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  return app;
}
