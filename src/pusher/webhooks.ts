/**
 * Webhooks in Pusher's format, as Laravel's and the server libraries' webhook
 * handlers check them: a body `{"time_ms","events":[{"name",…}]}`, the app's key
 * in X-Pusher-Key and hex HMAC-SHA256 of the body with the app's secret in
 * X-Pusher-Signature. The events are channel_occupied, channel_vacated,
 * member_added, member_removed (written by the cluster's presence) and
 * client_event.
 */
import type { WebhookFormat } from '../hooks/webhook-sender.ts';
import type { PusherApp } from './apps.ts';
import { webhookSignature } from './signing.ts';

/** Parses `id=url[,id=url…]`; throws naming the first bad entry. */
export function parsePusherWebhooks(text: string): Record<string, string> {
  const hooks: Record<string, string> = {};
  for (const entry of text.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const at = entry.indexOf('=');
    const id = entry.slice(0, at);
    const url = entry.slice(at + 1);
    if (at < 1 || !/^[\w-]{1,64}$/.test(id) || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
      throw new Error(`"${entry.slice(0, 60)}" is not <app id>=<http or https URL>`);
    }
    if (id in hooks) throw new Error(`app ${id} has two webhook URLs`);
    hooks[id] = url;
  }
  return hooks;
}

/** The webhook events Pusher sends, each of which an app may take or leave (PUSHER_WEBHOOK_EVENTS). */
export const PUSHER_WEBHOOK_EVENTS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'] as const;
export type PusherWebhookEvent = (typeof PUSHER_WEBHOOK_EVENTS)[number];

/** Parses `id=event+event[,…]` (which events each app's webhook gets); throws naming the first bad entry. */
export function parsePusherWebhookEvents(text: string): Record<string, ReadonlySet<PusherWebhookEvent>> {
  const chosen: Record<string, ReadonlySet<PusherWebhookEvent>> = {};
  for (const entry of text.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const [id, list] = entry.split('=') as [string, string | undefined];
    const events = (list ?? '').split('+').map((e) => e.trim());
    if (!/^[\w-]{1,64}$/.test(id) || list === undefined || events.some((e) => !(PUSHER_WEBHOOK_EVENTS as readonly string[]).includes(e))) {
      throw new Error(`"${entry.slice(0, 60)}" is not <app id>=<event>+<event>… with events among ${PUSHER_WEBHOOK_EVENTS.join(', ')}`);
    }
    chosen[id] = new Set(events as PusherWebhookEvent[]);
  }
  return chosen;
}

/** The wire format of one app's webhooks. */
export function pusherWebhookFormat(app: PusherApp): WebhookFormat {
  return (events) => {
    const body = JSON.stringify({ time_ms: Date.now(), events });
    return {
      body,
      headers: {
        'content-type': 'application/json',
        'x-pusher-key': app.key,
        'x-pusher-signature': webhookSignature(app, body),
      },
    };
  };
}

/** The client_event webhook of a client event: its data as text, as Pusher gives it (a string as it came, anything else JSON-encoded). */
export function clientEventHook(channel: string, event: string, data: unknown, socketId: string, userId?: string): Record<string, unknown> {
  return {
    name: 'client_event',
    channel,
    event,
    data: typeof data === 'string' ? data : JSON.stringify(data ?? null),
    socket_id: socketId,
    ...(userId === undefined ? {} : { user_id: userId }),
  };
}
