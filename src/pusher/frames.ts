/**
 * The frames of Pusher Channels protocol 7, as pusher-js speaks it: what a
 * socket sends (zod schemas) and what it is sent. A Pusher event is stored in
 * the outbox as the JSON `{"event","data"[,"user_id"]}` on its app's channel.
 */
import { z } from 'zod';

/** Channel names as Pusher allows them. */
export const CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,164}$/;
/** A signed-in user's own channel: what the server libraries' sendToUser() triggers on, and pusher-js subscribes to after sign-in. */
export const USER_CHANNEL_PREFIX = '#server-to-user-';
const USER_CHANNEL = /^#server-to-user-[A-Za-z0-9_\-=@,.;]{1,164}$/;

/** Whether an event may be sent to `name`: a channel, or a user's own channel. */
export function isChannelName(name: string): boolean {
  return CHANNEL_NAME.test(name) || USER_CHANNEL.test(name);
}

/** Pusher's limit on an event's data, from the server API or a client. */
export const MAX_EVENT_DATA = 10 * 1024;

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

/** pusher:signin: who the socket is (`user_data`, JSON with an `id`), signed by the app's user authentication endpoint. */
export const SigninData = z.object({
  user_data: z.string().max(10_000),
  auth: z.string().max(1000),
});

/** A presence subscription's channel_data: who the member is, and what it says about itself. */
export const ChannelData = z.object({
  user_id: z.union([z.string().min(1).max(200), z.number()]),
  user_info: z.unknown().optional(),
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
/** A presence channel's subscription: every member's user_id and user_info (`data` a JSON string, as pusher-js expects). */
export const presenceSucceeded = (channel: string, hash: Record<string, unknown>) =>
  JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel, data: JSON.stringify({ presence: { ids: Object.keys(hash), hash, count: Object.keys(hash).length } }) });
export const memberAdded = (channel: string, userId: string, info: unknown) =>
  JSON.stringify({ event: 'pusher_internal:member_added', channel, data: JSON.stringify(info === undefined ? { user_id: userId } : { user_id: userId, user_info: info }) });
export const memberRemoved = (channel: string, userId: string) => JSON.stringify({ event: 'pusher_internal:member_removed', channel, data: JSON.stringify({ user_id: userId }) });
/** The answer to a good pusher:signin: what it signed, as pusher-js reads it back. */
export const signinSuccess = (userData: string) => JSON.stringify({ event: 'pusher:signin_success', data: { user_data: userData } });
export const subscriptionError = (channel: string, type: string, error: string, status: number) =>
  JSON.stringify({ event: 'pusher:subscription_error', channel, data: { type, error, status } });
