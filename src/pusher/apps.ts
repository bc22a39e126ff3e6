/**
 * The Pusher apps this server answers for (PUSHER_APPS): each has an id (the
 * HTTP API's /apps/{id}), a key (the socket's /app/{key}) and a secret (both
 * signatures). Each app's channels are its own: stored under a reserved prefix
 * that neither another app nor pgmesh's own protocol can reach.
 */
import { RESERVED_PREFIX } from '../core/channels.ts';

export interface PusherApp {
  id: string;
  key: string;
  secret: string;
}

/** Parses `id:key:secret[,id:key:secret…]`; throws naming the first bad entry. */
export function parsePusherApps(text: string): PusherApp[] {
  const apps = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [id, key, secret, extra] = entry.split(':');
      if (!id || !key || !secret || extra !== undefined || !/^[\w-]{1,64}$/.test(id) || !/^[\w-]{1,128}$/.test(key) || secret.length < 8) {
        throw new Error(`"${entry.slice(0, 40)}" is not id:key:secret (letters, digits, _ and -; a secret of 8 characters at least)`);
      }
      return { id, key, secret };
    });
  for (const [i, app] of apps.entries()) {
    if (apps.findIndex((a) => a.id === app.id || a.key === app.key) !== i) throw new Error(`app id ${app.id} or key ${app.key} is given twice`);
  }
  return apps;
}

/** Parses `id=on|off[,…]` (whether each app's sockets may send client events); throws naming the first bad entry. */
export function parsePusherClientEvents(text: string): Record<string, boolean> {
  const chosen: Record<string, boolean> = {};
  for (const entry of text.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const match = /^([\w-]{1,64})=(on|off)$/.exec(entry);
    if (match === null) throw new Error(`"${entry.slice(0, 60)}" is not <app id>=on or <app id>=off`);
    chosen[match[1]!] = match[2] === 'on';
  }
  return chosen;
}

/** Looks apps up by key (sockets) and by id (the HTTP API). */
export class PusherApps {
  readonly #byKey: Map<string, PusherApp>;
  readonly #byId: Map<string, PusherApp>;

  constructor(readonly list: readonly PusherApp[]) {
    this.#byKey = new Map(list.map((a) => [a.key, a]));
    this.#byId = new Map(list.map((a) => [a.id, a]));
  }

  byKey(key: string): PusherApp | undefined {
    return this.#byKey.get(key);
  }

  byId(id: string): PusherApp | undefined {
    return this.#byId.get(id);
  }
}

/** Where an app's channel lives among pgmesh's channels. */
export function storedChannel(app: PusherApp, channel: string): string {
  return `${RESERVED_PREFIX}pusher:${app.id}:${channel}`;
}

/** The app's own name of a stored channel. */
export function pusherChannel(app: PusherApp, stored: string): string {
  return stored.slice(storedChannel(app, '').length);
}

/** The uid a presence member of an app is written as in the cluster's presence (apart from pgmesh's own users). */
export function memberUid(app: PusherApp, userId: string): string {
  return `${RESERVED_PREFIX}pusher:${app.id}:${userId}`;
}

/** The app's user_id of a member written by memberUid(). */
export function memberId(app: PusherApp, uid: string): string {
  const prefix = memberUid(app, '');
  return uid.startsWith(prefix) ? uid.slice(prefix.length) : uid;
}
