/**
 * What an instance says about itself every MESH_STATS_INTERVAL, as written to
 * its row (the report) and to its series (the sample), and as the server API
 * and the console read them back. One definition for writer and reader; a row
 * written by another version of pgmesh that does not parse is shown as
 * unknown, never trusted.
 */
import { z } from 'zod';

const count = z.number().int().nonnegative();
const ms = z.number().nonnegative();

/** The instance's state as a balancer would see it. */
export const InstanceState = z.enum(['ready', 'draining', 'full', 'listen_down']);

export const InstanceReport = z.object({
  /** pgmesh's own version. */
  version: z.string(),
  runtime: z.string(),
  runtimeVersion: z.string(),
  state: InstanceState,
  /** Connections by transport and by dialect (`pending`: not authenticated yet; `console`: open consoles). */
  connections: z.object({
    total: count,
    websocket: count,
    sse: count,
    pgmesh: count,
    pusher: count,
    mercure: count,
    console: count,
    pending: count,
  }),
  /** Each Pusher app's connections on this instance, by app id. */
  pusherApps: z.record(z.string(), count),
  /** The connections it takes before it says it is full; null: no limit known. */
  capacity: count.nullable(),
  users: count,
  channels: count,
  subscriptions: count,
  /** LISTEN up (false: it polls the table instead) and the last message id it has. */
  listening: z.boolean(),
  position: count,
  /** The longest event-loop delay of the last interval, and the resident memory. */
  loopDelayMs: ms,
  memoryMb: ms,
  /** What its webhook senders did since it started, by target ('' is pgmesh's own). */
  webhooks: z.record(z.string(), z.object({ sent: count, failures: count, expired: count, dropped: count })),
  rpc: z.object({ calls: count, failures: count }),
  /** Things an operator should look at, counted since it started. */
  problems: z.object({
    slowConsumers: count,
    uncaught: count,
    /** Errors answered to clients and callers, by code. */
    errors: z.record(z.string(), count),
    /** Connections and subscriptions refused at a limit, by limit. */
    limits: z.record(z.string(), count),
    dataRefused: z.record(z.string(), count),
  }),
  /** Its last warnings and errors, newest first. */
  recent: z.array(z.object({ at: z.string(), level: z.enum(['warn', 'error']), message: z.string(), error: z.string().optional() })),
});
export type InstanceReport = z.infer<typeof InstanceReport>;

/** One point of the instance's series: running totals (rates come from two points) and the interval's latencies. */
export const InstanceSample = z.object({
  published: count,
  commits: count,
  delivered: count,
  received: count,
  errors: count,
  connections: count,
  /** The interval's publish p99 (store to commit), webhook POST p99 and rpc p99, ms; null when there were none. */
  publishP99: ms.nullable(),
  webhookP99: ms.nullable(),
  rpcP99: ms.nullable(),
  /** The longest commit-to-arrival lag of the interval, and the longest event-loop delay, ms. */
  lagMs: ms,
  loopMs: ms,
});
export type InstanceSample = z.infer<typeof InstanceSample>;
