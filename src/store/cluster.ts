/**
 * The cluster's state, as an interface (presence, like centrifuge's
 * PresenceManager): which instances are alive, who is connected where and
 * subscribed to what, the member lists and the join/leave events. Every instance
 * writes its own connections and reads everyone's. SqlCluster (sql-cluster.ts)
 * keeps it in Postgres; test/presence-contract.test.ts is its contract.
 */
import type { WebhookTargets } from './webhooks.ts';

/** One live connection, as the server API reports it. */
export interface ConnectionInfo {
  id: string;
  instance: string;
  transport: string;
  /** The client's address as the deployment's proxies tell it; null when not known. */
  address: string | null;
  channels: string[];
  connectedAt: string;
}

/** An instance's row: alive (heartbeating) or silent and not reaped yet, with what it last said about itself. */
export interface InstanceRow {
  id: string;
  region: string | null;
  startedAt: string;
  seenAt: string;
  /** Heartbeating within the TTL; false for one gone silent that nobody reaped yet. */
  live: boolean;
  /** Its last report (console/instance-stats.ts), as written; null before the first. */
  stats: unknown;
}

/** One instance's counters at one time (console/instance-stats.ts), for charts. */
export interface InstanceSampleRow {
  instance: string;
  /** Epoch milliseconds, by the database's clock (one clock for the whole cluster). */
  at: number;
  sample: unknown;
}

export interface ChannelInfo {
  channel: string;
  subscribers: number;
  users: number;
}

/** A page of a keyset-paginated listing: `next` is the cursor of the next page, null on the last. */
export interface Page<T> {
  items: T[];
  count: number;
  next: string | null;
}

/** What a local session looks like to presence: enough to write its rows again. */
export interface LocalConnection {
  id: string;
  uid: string;
  transport: string;
  connectedAt: number;
  address?: string;
  channels: readonly string[];
  /** What it said about itself in some of them (a Pusher member's user_info), by channel: written with them. */
  said?: ReadonlyMap<string, string>;
}

export interface Cluster {
  /** Registers this instance, clears what a previous process of the same id left, starts heartbeats. */
  start(): Promise<void>;
  connected(id: string, uid: string, transport: string, connectedAt: number, address?: string): void;
  /** `info` is what a presence member says about itself (JSON), carried by its join event and the member list. */
  subscribed(id: string, uid: string, channels: readonly string[], info?: string): void;
  unsubscribed(id: string, uid: string, channels: readonly string[]): void;
  /** `reason` says why, in the disconnect webhook: client_closed, kicked, token_expired, … */
  disconnected(id: string, reason: string): void;
  /** Writes what is waiting now. */
  flush(): Promise<void>;
  /** Resolves once every change told so far is written: visible to every instance's reads (read-your-writes). */
  settled(): Promise<void>;
  /** The live connections of a user, anywhere. */
  user(uid: string): Promise<ConnectionInfo[]>;
  /** Online users, all or those subscribed to `channel`, by uid. */
  users(options: { channel?: string; limit: number; after?: string }): Promise<Page<string>>;
  /** Channels with at least one live subscriber, by name. */
  channels(options: { prefix?: string; limit: number; after?: string }): Promise<Page<ChannelInfo>>;
  /** The users subscribed to a channel (with what they said about themselves), and the last message id that state includes (join/leave events after it follow). */
  members(channel: string): Promise<{ uids: string[]; info: Record<string, string | null>; at: number }>;
  /** Every live connection subscribed to `channel`, with what it said about itself there (its subscription's info), by connection id. */
  connectionsIn(channel: string): Promise<{ connection: string; info: string | null }[]>;
  /** Records where the other instances reach this one (MESH_ADVERTISE_URL). */
  advertise(url: string): Promise<void>;
  /** Where a live instance said it can be reached; null for an unknown or dead one. */
  instanceUrl(instance: string): Promise<string | null>;
  /** Writes this instance's report: `stats` replaces its last, `sample` joins its series (kept SAMPLES_KEPT_MS). */
  report(stats: object, sample: object): Promise<void>;
  /** Every instance's row, live ones and those silent but not reaped yet, by id. */
  instances(): Promise<InstanceRow[]>;
  /** Every instance's samples taken after `afterMs` (epoch ms), oldest first; with `step` > 1, about one in `step` of them (and the last). */
  samples(afterMs: number, step: number): Promise<InstanceSampleRow[]>;
  /** Removes this instance's rows (leave events follow) and stops. */
  close(): Promise<void>;
}

/** How long the samples for the console's charts are kept. */
export const SAMPLES_KEPT_MS = 15 * 60_000;

export interface ClusterOptions {
  instance: string;
  region?: string;
  /** An instance silent this long is dead (MESH_INSTANCE_TTL). */
  ttlMs: number;
  /** The local connections, to write again if this instance was taken for dead while alive. */
  local: () => Iterable<LocalConnection>;
  onError: (err: unknown) => void;
  /** A heartbeat went through (ends an outage that onError reported). */
  onHealthy?: () => void;
  /** Webhooks, by target ('' pgmesh's, 'pusher:<app id>' a Pusher app's): each change's events are written for these, up to each one's bound. */
  hooks?: WebhookTargets;
  /** A connection's presence changes the database refused for their data: dropped, so the rest are written. */
  onRefused?: (err: unknown) => void;
}
