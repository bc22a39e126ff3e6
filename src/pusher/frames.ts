/**
 * The frames of Pusher Channels protocol 7, as pusher-js speaks it: what a
 * socket sends (zod schemas) and what it is sent. A Pusher event is stored in
 * the outbox as the JSON `{"event","data"[,"user_id"]}` on its app's channel.
 */
import { z } from 'zod';

/** Channel names as Pusher allows them. */
export const CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,164}$/;

export const IncomingFrame = z.object({
  event: z.string().min(1).max(200),
  channel: z.string().max(200).optional(),
  data: z.unknown().optional(),
});

export const SubscribeData = z.object({
  channel: z.string(),
  auth: z.string().max(1000).optional(),
  channel_data: z.string().max(10_000).optional(),
});

/** Channels whose subscriptions the app's auth endpoint signs. */
export function needsAuth(channel: string): boolean {
  return channel.startsWith('private-') || channel.startsWith('presence-');
}

/** The outbox text of one event. */
export function storedEvent(event: string, data: unknown, userId?: string): string {
  return JSON.stringify(userId === undefined ? { event, data } : { event, data, user_id: userId });
}

/** The frame a socket gets for a stored event on `channel` (the app's own name of it). */
export function eventFrame(stored: string, channel: string): string {
  const { event, data, user_id } = JSON.parse(stored) as { event: string; data: unknown; user_id?: string };
  return JSON.stringify(user_id === undefined ? { event, channel, data } : { event, channel, data, user_id });
}

// Protocol frames: `data` of connection_established is a JSON string, as pusher-js expects.
export const connectionEstablished = (socketId: string, activityTimeoutS: number) =>
  JSON.stringify({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeoutS }) });
export const pusherError = (code: number | null, message: string) => JSON.stringify({ event: 'pusher:error', data: { code, message } });
export const PONG = JSON.stringify({ event: 'pusher:pong', data: {} });
export const subscriptionSucceeded = (channel: string) => JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel });
export const subscriptionError = (channel: string, type: string, error: string, status: number) =>
  JSON.stringify({ event: 'pusher:subscription_error', channel, data: { type, error, status } });
