/**
 * Channel names and who may use them.
 *
 * Namespaces: `user:<uid>` is a user's personal channel (private); every other
 * name is public. `@user` is the alias for the caller's own personal channel.
 * Grants come from token claims (see auth.ts) as `*` glob patterns.
 */
import { MeshError } from './errors.ts';

export const USER_PREFIX = 'user:';
export const USER_ALIAS = '@user';
export const BROADCAST = 'broadcast';
export const MAX_CHANNEL_BYTES = 255;

// Printable, no whitespace or control characters, no '*' (reserved for grant patterns).
const VALID = /^[^\s\x00-\x1f\x7f*]+$/u;
const encoder = new TextEncoder();

/** What a verified token lets its holder do. */
export interface Grants {
  uid: string;
  /** Extra patterns the holder may subscribe to, beyond public channels and their own user channel. */
  subscribe: readonly string[];
  /** Patterns the holder may publish to; null means the default policy (everything it may subscribe to, plus user channels). */
  publish: readonly string[] | null;
}

/** Throws ERR_BAD_CHANNEL unless `name` is a usable channel name. */
export function assertChannelName(name: string): void {
  if (name.length === 0 || !VALID.test(name)) {
    throw new MeshError('ERR_BAD_CHANNEL', `invalid channel name ${JSON.stringify(name.slice(0, 64))}`);
  }
  if (name.length > MAX_CHANNEL_BYTES / 4 && encoder.encode(name).length > MAX_CHANNEL_BYTES) {
    throw new MeshError('ERR_BAD_CHANNEL', `channel name longer than ${MAX_CHANNEL_BYTES} bytes`);
  }
}

/** Resolves `@user` for this holder and validates the result. */
export function resolveChannel(name: string, uid: string | undefined): string {
  const channel = name === USER_ALIAS && uid !== undefined ? USER_PREFIX + uid : name;
  assertChannelName(channel);
  return channel;
}

/** The personal channel of a user. */
export function userChannel(uid: string): string {
  return USER_PREFIX + uid;
}

/** True when `channel` is the personal channel of `uid`. */
export function isOwnChannel(channel: string, uid: string): boolean {
  return channel === USER_PREFIX + uid;
}

/** Glob match where `*` stands for any run of characters. */
export function matchesPattern(pattern: string, channel: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === channel;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!channel.startsWith(first) || !channel.endsWith(last) || channel.length < first.length + last.length) return false;
  let at = first.length;
  const end = channel.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = channel.indexOf(parts[i]!, at);
    if (found < 0 || found + parts[i]!.length > end) return false;
    at = found + parts[i]!.length;
  }
  return true;
}

function granted(patterns: readonly string[], channel: string): boolean {
  return patterns.some((p) => matchesPattern(p, channel));
}

/** May this holder subscribe to `channel`? Public channels and their own user channel, plus grants. */
export function canSubscribe(grants: Grants, channel: string): boolean {
  if (!channel.startsWith(USER_PREFIX)) return true;
  return isOwnChannel(channel, grants.uid) || granted(grants.subscribe, channel);
}

/** May this holder publish to `channel`? Default: any channel (connmix chat semantics); a `publish` claim narrows it. */
export function canPublish(grants: Grants, channel: string): boolean {
  return grants.publish === null ? true : granted(grants.publish, channel);
}
