/**
 * The signatures of the Pusher protocol, with the app's secret:
 * a private or presence subscription carries `key:hex(HMAC-SHA256("socket_id:channel[:channel_data]"))`
 * (what the app's /broadcasting/auth returns), a sign-in `key:hex(HMAC-SHA256("socket_id::user::user_data"))`
 * (what its user authentication endpoint returns), a webhook hex(HMAC-SHA256(body)), and an HTTP API request carries
 * auth_key, auth_timestamp, auth_version, body_md5 and auth_signature (HMAC of
 * "METHOD\npath\nsorted query") in its query string.
 */
import { Buffer } from 'node:buffer';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { PusherApp } from './apps.ts';

/** How far an API request's auth_timestamp may be from now. */
const API_TOLERANCE_S = 600;

function hmacHex(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

// Compared as bytes: a signature of the right length in characters but not in bytes (multi-byte
// characters) is simply wrong, where timingSafeEqual would throw on the unequal lengths.
function sameHex(a: string, b: string): boolean {
  const given = Buffer.from(a);
  const expected = Buffer.from(b);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The `auth` a subscription to `channel` from `socketId` must carry. */
export function channelAuth(app: PusherApp, socketId: string, channel: string, channelData?: string): string {
  return `${app.key}:${hmacHex(app.secret, channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`)}`;
}

/** Whether `auth` is what the app's secret signs for this socket and channel. */
export function channelAuthValid(app: PusherApp, socketId: string, channel: string, auth: unknown, channelData?: string): boolean {
  return typeof auth === 'string' && sameHex(auth, channelAuth(app, socketId, channel, channelData));
}

/** Whether `auth` is what the app's secret signs for this socket signing in as `userData` ("socket_id::user::user_data"). */
export function userAuthValid(app: PusherApp, socketId: string, userData: string, auth: unknown): boolean {
  return typeof auth === 'string' && sameHex(auth, `${app.key}:${hmacHex(app.secret, `${socketId}::user::${userData}`)}`);
}

/** X-Pusher-Signature of a webhook body: hex HMAC-SHA256 of it with the app's secret. */
export function webhookSignature(app: PusherApp, body: string): string {
  return hmacHex(app.secret, body);
}

/** Why a signed HTTP API request is refused, or null when it is good. */
export function apiSignatureProblem(app: PusherApp, method: string, path: string, query: URLSearchParams, body: string, now = Date.now()): string | null {
  if (query.get('auth_key') !== app.key) return 'auth_key is not this app\'s key';
  if (query.get('auth_version') !== '1.0') return 'auth_version must be 1.0';
  const timestamp = Number(query.get('auth_timestamp'));
  if (!Number.isFinite(timestamp) || Math.abs(now / 1000 - timestamp) > API_TOLERANCE_S) return 'auth_timestamp is missing or more than 600 s from the server time';
  if (body !== '' && query.get('body_md5') !== createHash('md5').update(body).digest('hex')) return 'body_md5 does not match the body';
  const signed = [...query.entries()]
    .filter(([key]) => key !== 'auth_signature')
    .map(([key, value]) => [key.toLowerCase(), value] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
  const given = query.get('auth_signature') ?? '';
  return sameHex(given, hmacHex(app.secret, `${method}\n${path}\n${signed}`)) ? null : 'auth_signature does not match';
}
