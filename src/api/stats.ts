/**
 * GET /v1/mesh/stats — what this instance holds right now: sessions by
 * transport, users and channels with local subscribers, and (with webhooks)
 * the webhook queue and what this instance sent. Instance-local.
 */
import { Hono } from 'hono';
import type { Hub } from '../core/hub.ts';
import type { Store } from '../store/store.ts';
import type { WebhookStats } from '../hooks/webhook-sender.ts';

/** The stats route; mount it behind the server-API guard. */
export function statsRoute(hub: Hub, store: Store, instance: string, webhooks?: () => WebhookStats): Hono {
  const app = new Hono();
  app.get('/stats', (c) => {
    let websocket = 0;
    let sse = 0;
    for (const session of hub.sessions()) {
      if (session.transport === 'sse') sse++;
      else websocket++;
    }
    return c.json({
      instance,
      sessions: { total: websocket + sse, websocket, sse },
      users: hub.userCount(),
      channels: hub.channelCount(),
      position: store.position,
      listening: store.listening,
      ...(webhooks && { webhooks: webhooks() }),
    });
  });
  return app;
}
