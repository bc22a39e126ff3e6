/**
 * Channel names and who may use them.
 *
 * Namespaces: `user:<uid>` is a user's personal channel (private); every other
 * name is public. `@user` is the alias for the caller's own personal channel,
 * and `user_<uid>` is connmix's spelling of `user:<uid>` (same channel, same
 * rules; frames name it the way the client did). Grants come from token claims
 * (see auth.ts) as `*` glob patterns.
 */
import { MeshError } from './errors.ts';

export const USER_PREFIX = 'user:';
export const USER_ALIAS = '@user';
/** connmix clients name their personal channel `user_<uid>`. */
export const CONNMIX_USER_PREFIX = 'user_';
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
  if (name.length === 0 || !VALID.test(name) || !name.isWellFormed()) {
    throw new MeshError('ERR_BAD_CHANNEL', `invalid channel name ${JSON.stringify(name.slice(0, 64))}`);
  }
  if (name.length > MAX_CHANNEL_BYTES / 4 && encoder.encode(name).length > MAX_CHANNEL_BYTES) {
    throw new MeshError('ERR_BAD_CHANNEL', `channel name longer than ${MAX_CHANNEL_BYTES} bytes`);
  }
}

/** Names starting with `$` are pgmesh's own (`$all`, `$presence:…`, `$cmd`): no client or API call names them. */
export const RESERVED_PREFIX = '$';
/** Every authenticated connection listens here: a publish to everyone (sendToAll). */
export const ALL_CHANNEL = '$all';
/** Commands for connections wherever they are (server-side subscribe, kick), in feed order. */
export const COMMAND_CHANNEL = '$cmd';
/** The join/leave events of `channel`. */
export function presenceChannel(channel: string): string {
  return `$presence:${channel}`;
}

/** The stored channel for a name a client or caller gave: `user_<uid>` is `user:<uid>`; validated, reserved names refused. */
export function canonicalChannel(name: string): string {
  if (name.startsWith(RESERVED_PREFIX)) throw new MeshError('ERR_BAD_CHANNEL', `channel names starting with ${RESERVED_PREFIX} are reserved`);
  const channel = name.startsWith(CONNMIX_USER_PREFIX) && name.length > CONNMIX_USER_PREFIX.length ? USER_PREFIX + name.slice(CONNMIX_USER_PREFIX.length) : name;
  assertChannelName(channel);
  return channel;
}

/** A channel as stored (`channel`) and as the client named it in frames (`name`). */
export interface ChannelRef {
  channel: string;
  name: string;
}

/** Resolves a client's channel name for this holder: `@user`, connmix `user_<uid>`, or a plain name. */
export function resolveChannel(name: string, uid: string | undefined): ChannelRef {
  if (name === USER_ALIAS && uid !== undefined) {
    const channel = USER_PREFIX + uid;
    assertChannelName(channel);
    return { channel, name: channel };
  }
  return { channel: canonicalChannel(name), name };
}

/** The uid a `sendtouser` target names: `user_<uid>`, `user:<uid>` or the bare uid. */
export function uidOfTarget(target: string): string {
  for (const prefix of [CONNMIX_USER_PREFIX, USER_PREFIX]) {
    if (target.startsWith(prefix) && target.length > prefix.length) return target.slice(prefix.length);
  }
  return target;
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
