/**
 * GET /v1/mesh/stats — what this instance holds right now: sessions by
 * transport, users and channels with local subscribers, and (with webhooks)
 * each webhook queue and what this instance sent of it: pgmesh's as
 * `webhooks`, each Pusher app's under `pusherWebhooks` by app id. Instance-local.
 */
import { Hono } from 'hono';
import type { Capacity } from './capacity.ts';
import type { Hub } from '../core/hub.ts';
import type { Store } from '../store/store.ts';
import type { WebhookStats } from '../hooks/webhook-sender.ts';
import type { WebhookSenders } from '../hooks/webhook-senders.ts';
import { MESH_TARGET, pusherAppOf } from '../store/webhooks.ts';

/** The stats route; mount it behind the server-API guard. */
export function statsRoute(hub: Hub, store: Store, instance: string, webhooks?: WebhookSenders, capacity?: Capacity): Hono {
  const app = new Hono();
  app.get('/stats', (c) => {
    const { websocket, sse } = hub.byTransport();
    const mesh = webhooks?.stats(MESH_TARGET);
    const pusher = pusherStats(webhooks);
    return c.json({
      instance,
      sessions: { total: websocket + sse, websocket, sse },
      // The realtime connections this instance takes before it says it is full, and where that number comes from.
      ...(capacity !== undefined && { capacity }),
      users: hub.userCount(),
      channels: hub.channelCount(),
      position: store.position,
      listening: store.listening,
      ...(mesh !== undefined && { webhooks: mesh }),
      ...(pusher !== undefined && { pusherWebhooks: pusher }),
    });
  });
  return app;
}

function pusherStats(webhooks: WebhookSenders | undefined): Record<string, WebhookStats> | undefined {
  const byApp: Record<string, WebhookStats> = {};
  for (const [target, stats] of webhooks?.entries() ?? []) {
    const app = pusherAppOf(target);
    if (app !== null) byApp[app] = stats;
  }
  return Object.keys(byApp).length > 0 ? byApp : undefined;
}
