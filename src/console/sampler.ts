/**
 * Every MESH_STATS_INTERVAL, the instance writes what it is doing to the
 * cluster's tables (Cluster.report): its report (state, connections by kind,
 * problems) and one sample of its running totals. Any instance's console and
 * server API read every instance's, so one page shows the whole cluster. A
 * write that fails is skipped: the next interval writes afresh.
 */
import type { Hub } from '../core/hub.ts';
import { RESERVED_PREFIX } from '../core/channels.ts';
import { CONSOLE_UID } from '../core/auth.ts';
import type { Cluster } from '../store/cluster.ts';
import type { Store } from '../store/store.ts';
import type { WebhookSenders } from '../hooks/webhook-senders.ts';
import type { InstanceReport, InstanceSample } from './instance-stats.ts';
import type { RecentProblems } from './recent-problems.ts';
import type { Tally } from './tally.ts';

const PUSHER_UID = `${RESERVED_PREFIX}pusher:`;
const MERCURE_UID = `${RESERVED_PREFIX}mercure:`;
/** How often the event loop is looked at: its delay is how late this timer fires. */
const LOOP_PROBE_MS = 200;

export interface SamplerParts {
  version: string;
  runtime: { name: string; version: string };
  hub: Hub;
  store: Store;
  cluster: Cluster;
  tally: Tally;
  recent: RecentProblems;
  webhooks: WebhookSenders | undefined;
  /** Draining, and the capacity past which it is full (null: none known). */
  draining: () => boolean;
  capacity: number | null;
  intervalMs: number;
}

/** Writes the instance's report and sample every interval; start() once the cluster has started. */
export class InstanceSampler {
  readonly #p: SamplerParts;
  #timer: ReturnType<typeof setInterval> | null = null;
  #probe: ReturnType<typeof setInterval> | null = null;
  #probeDue = 0;
  #loopMs = 0;
  #writing = false;

  constructor(parts: SamplerParts) {
    this.#p = parts;
  }

  start(): void {
    this.#probeDue = performance.now() + LOOP_PROBE_MS;
    this.#probe = setInterval(() => {
      const now = performance.now();
      this.#loopMs = Math.max(this.#loopMs, now - this.#probeDue);
      this.#probeDue = now + LOOP_PROBE_MS;
    }, LOOP_PROBE_MS);
    this.#timer = setInterval(() => void this.writeNow(), this.#p.intervalMs);
    void this.writeNow();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#probe) clearInterval(this.#probe);
  }

  /** Takes and writes one report and sample now (the next interval's latencies start afresh). */
  async writeNow(): Promise<void> {
    // A database slower than the interval gets one write at a time, not a queue of them.
    if (this.#writing) return;
    this.#writing = true;
    try {
      const { report, sample } = this.take();
      await this.#p.cluster.report(report, sample);
    } catch {
      // The database is down: the store's outage log says so once; the next interval tries again.
    } finally {
      this.#writing = false;
    }
  }

  /** The report and the sample as of now. */
  take(): { report: InstanceReport; sample: InstanceSample } {
    const { hub, store, tally } = this.#p;
    const connections = { total: 0, websocket: 0, sse: 0, pgmesh: 0, pusher: 0, mercure: 0, console: 0, pending: 0 };
    const pusherApps: Record<string, number> = {};
    let subscriptions = 0;
    for (const session of hub.sessions()) {
      connections.total++;
      if (session.transport === 'sse') connections.sse++;
      else connections.websocket++;
      subscriptions += session.subscriptionCount;
      const uid = session.uid;
      if (uid === undefined) connections.pending++;
      else if (uid.startsWith(PUSHER_UID)) {
        connections.pusher++;
        const app = uid.slice(PUSHER_UID.length).split(':', 1)[0]!;
        pusherApps[app] = (pusherApps[app] ?? 0) + 1;
      } else if (uid.startsWith(MERCURE_UID)) connections.mercure++;
      else if (uid === CONSOLE_UID) connections.console++;
      else connections.pgmesh++;
    }
    const capacity = this.#p.capacity;
    const state = this.#p.draining() ? 'draining' : capacity !== null && hub.size >= capacity ? 'full' : store.listening ? 'ready' : 'listen_down';
    const webhooks: InstanceReport['webhooks'] = {};
    for (const [target, s] of this.#p.webhooks?.entries() ?? []) webhooks[target] = { sent: s.sent, failures: s.failures, expired: s.expired, dropped: s.dropped };
    const loopMs = round(this.#loopMs);
    this.#loopMs = 0;
    const publish = tally.publishMs.take();
    const webhook = tally.webhookMs.take();
    const rpc = tally.rpcMs.take();
    const lagMs = round(tally.lagMs);
    tally.lagMs = 0;
    const errors = tally.errors.total();
    const report: InstanceReport = {
      version: this.#p.version,
      runtime: this.#p.runtime.name,
      runtimeVersion: this.#p.runtime.version,
      state,
      connections,
      pusherApps,
      capacity,
      users: hub.userCount(),
      channels: hub.channelCount(),
      subscriptions,
      listening: store.listening,
      position: store.position,
      loopDelayMs: loopMs,
      memoryMb: round(process.memoryUsage().rss / 1048576),
      webhooks,
      rpc: { calls: tally.rpcCalls, failures: tally.rpcFailures },
      problems: {
        slowConsumers: tally.slowConsumers,
        uncaught: tally.uncaught,
        errors: tally.errors.toJSON(),
        limits: tally.limits.toJSON(),
        dataRefused: tally.dataRefused.toJSON(),
      },
      recent: this.#p.recent.list(),
    };
    const sample: InstanceSample = {
      published: tally.published,
      commits: tally.commits,
      delivered: hub.delivered,
      received: tally.received,
      errors,
      connections: connections.total,
      publishP99: publish.p99,
      webhookP99: webhook.p99,
      rpcP99: rpc.p99,
      lagMs,
      loopMs,
    };
    return { report, sample };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
