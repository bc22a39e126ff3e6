/**
 * What an instance shows Prometheus at GET /metrics. Every metric is defined here.
 * The hot paths only add to plain numbers or observe a histogram once per group,
 * notification or call; gauges read the instance's state when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Hub } from './core/hub.ts';
import type { Store, StoreObserver } from './store/store.ts';
import type { WebhookStats } from './hooks/webhook-sender.ts';
import { Tally } from './console/tally.ts';

export interface MetricsLabels {
  instance: string;
  region: string | undefined;
  runtime: string;
}

/** The instance's registry, and the observers the store and the HTTP side report to. */
export interface Metrics {
  registry: Registry;
  /** The same counts as plain running totals, for the instance's own report (console/sampler.ts). */
  tally: Tally;
  store: StoreObserver;
  /** An error answered to a client or caller (reply frame or HTTP body), by its stable code. */
  errorReported(code: string): void;
  /** An exception or rejection nothing caught (a bug): counted, logged, survived. */
  uncaught(kind: 'rejection' | 'exception'): void;
  /** A connection or subscription refused at one of the server's limits (subscriptions, frames, per_user, per_address, pusher_idle). */
  limitReached(limit: string): void;
  /** An item the database refused for its data (SQLSTATE class 22), set apart so the rest of its batch went through: publish, presence. */
  dataRefused(where: string): void;
  /** A webhook POST to `target`'s URL ended: taken (2xx) or not. */
  webhookPosted(target: string, seconds: number, ok: boolean): void;
  /** A call to MESH_RPC_URL ended: answered (a result or the backend's own refusal) or not (timeout, failure). */
  rpcAnswered(seconds: number, ok: boolean): void;
  /** A connection was cut off for not reading its messages (slow consumer). */
  slowConsumer(): void;
  /** Adds the gauges read from the running instance (once its hub and store exist). */
  watch(hub: Hub, store: Store): void;
  /** Adds the webhook sender's counts (with MESH_WEBHOOK_URL). */
  watchWebhooks(stats: () => WebhookStats): void;
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Creates the metrics of one instance. */
export function createMetrics({ instance, region, runtime }: MetricsLabels): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ instance, region: region ?? '' });
  collectDefaultMetrics({ register: registry });

  const published = new Counter({ name: 'pgmesh_messages_published_total', help: 'Messages this instance committed to the outbox.', registers: [registry] });
  const publishSeconds = new Histogram({
    name: 'pgmesh_publish_seconds',
    help: 'From a publish reaching the store to its commit: group-commit wait plus the commit.',
    buckets: SECONDS,
    registers: [registry],
  });
  const groupSize = new Histogram({
    name: 'pgmesh_commit_group_size',
    help: 'Messages per commit (group commit puts concurrent publishes into one).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers: [registry],
  });
  const lag = new Histogram({
    name: 'pgmesh_backplane_lag_seconds',
    help: 'From commit (on any instance) to the notification reaching this one, per notification.',
    buckets: SECONDS,
    registers: [registry],
  });
  const received = new Counter({ name: 'pgmesh_messages_received_total', help: 'Messages that reached this instance through LISTEN/NOTIFY.', registers: [registry] });
  const cursorWrites = new Counter({ name: 'pgmesh_cursor_writes_total', help: 'Per-user cursor rows written (offline delivery positions).', registers: [registry] });
  const errors = new Counter({ name: 'pgmesh_errors_total', help: 'Errors answered to clients and callers, by stable code.', labelNames: ['code'], registers: [registry] });
  const uncaught = new Counter({ name: 'pgmesh_uncaught_errors_total', help: 'Exceptions and rejections nothing caught (bugs): logged, and the process went on.', labelNames: ['kind'], registers: [registry] });
  const limits = new Counter({ name: 'pgmesh_limit_refusals_total', help: 'Connections and subscriptions refused at a limit, by limit.', labelNames: ['limit'], registers: [registry] });
  const dataRefused = new Counter({
    name: 'pgmesh_data_refused_total',
    help: 'Items the database refused for their data, set apart so the rest of their batch went through.',
    labelNames: ['where'],
    registers: [registry],
  });

  const webhookSeconds = new Histogram({
    name: 'pgmesh_webhook_seconds',
    help: 'Webhook POSTs by target and outcome (ok: 2xx), from send to answer.',
    labelNames: ['target', 'outcome'],
    buckets: SECONDS,
    registers: [registry],
  });
  const rpcSeconds = new Histogram({
    name: 'pgmesh_rpc_seconds',
    help: 'Calls to MESH_RPC_URL by outcome (ok: answered, failed: timeout or no usable answer).',
    labelNames: ['outcome'],
    buckets: SECONDS,
    registers: [registry],
  });
  const slowConsumers = new Counter({ name: 'pgmesh_slow_consumers_total', help: 'Connections cut off for not reading their messages.', registers: [registry] });
  const tally = new Tally();

  return {
    registry,
    tally,
    store: {
      published: (count, seconds) => {
        published.inc(count);
        publishSeconds.observe(seconds);
        tally.published += count;
        tally.publishMs.add(seconds * 1000);
      },
      committed: (size) => {
        groupSize.observe(size);
        tally.commits++;
      },
      arrived: (count, lagSeconds) => {
        received.inc(count);
        lag.observe(Math.max(0, lagSeconds));
        tally.received += count;
        tally.lagMs = Math.max(tally.lagMs, lagSeconds * 1000);
      },
      cursorsWritten: (rows) => cursorWrites.inc(rows),
      refused: () => {
        dataRefused.inc({ where: 'publish' });
        tally.dataRefused.add('publish');
      },
    },
    errorReported: (code) => {
      errors.inc({ code });
      tally.errors.add(code);
    },
    uncaught: (kind) => {
      uncaught.inc({ kind });
      tally.uncaught++;
    },
    limitReached: (limit) => {
      limits.inc({ limit });
      tally.limits.add(limit);
    },
    dataRefused: (where) => {
      dataRefused.inc({ where });
      tally.dataRefused.add(where);
    },
    webhookPosted: (target, seconds, ok) => {
      webhookSeconds.observe({ target: target === '' ? 'pgmesh' : target, outcome: ok ? 'ok' : 'failed' }, seconds);
      tally.webhookMs.add(seconds * 1000);
      if (!ok) tally.webhookFailures++;
    },
    rpcAnswered: (seconds, ok) => {
      rpcSeconds.observe({ outcome: ok ? 'ok' : 'failed' }, seconds);
      tally.rpcCalls++;
      tally.rpcMs.add(seconds * 1000);
      if (!ok) tally.rpcFailures++;
    },
    slowConsumer: () => {
      slowConsumers.inc();
      tally.slowConsumers++;
    },
    watchWebhooks(stats) {
      new Gauge({
        name: 'pgmesh_webhooks_pending',
        help: 'Webhook events waiting in the queue (all instances), as last counted.',
        registers: [registry],
        collect() {
          this.set(stats().pending);
        },
      });
      fromTally(registry, 'pgmesh_webhooks_sent_total', 'Webhook events this instance delivered (2xx).', () => stats().sent);
      fromTally(registry, 'pgmesh_webhook_failures_total', 'Webhook POSTs that failed and will be retried.', () => stats().failures);
      fromTally(registry, 'pgmesh_webhooks_dropped_total', 'Webhook events given up: expired after MESH_WEBHOOK_RETRY_FOR, or not written with the backlog full.', () => stats().expired + stats().dropped);
    },
    watch(hub, store) {
      new Gauge({
        name: 'pgmesh_info',
        help: 'Always 1; the labels say what runs.',
        labelNames: ['runtime', 'store'],
        registers: [registry],
        collect() {
          this.set({ runtime, store: store.kind }, 1);
        },
      });
      new Gauge({
        name: 'pgmesh_connections',
        help: 'Client connections held by this instance, by transport.',
        labelNames: ['transport'],
        registers: [registry],
        collect() {
          for (const [transport, n] of Object.entries(hub.byTransport())) this.set({ transport }, n);
        },
      });
      new Gauge({
        name: 'pgmesh_subscriptions',
        help: 'Channel subscriptions of the connections on this instance.',
        registers: [registry],
        collect() {
          let n = 0;
          for (const session of hub.sessions()) n += session.subscriptionCount;
          this.set(n);
        },
      });
      new Gauge({
        name: 'pgmesh_listen_up',
        help: '1 while the LISTEN connection is up; 0 while the instance polls the table instead.',
        registers: [registry],
        collect() {
          this.set(store.listening ? 1 : 0);
        },
      });
      fromTally(registry, 'pgmesh_messages_delivered_total', 'Messages handed to local subscribers (one per subscriber).', () => hub.delivered);
    },
  };
}

/** A counter whose value is a running total kept elsewhere (read when scraped, never reset). */
function fromTally(registry: Registry, name: string, help: string, total: () => number): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      this.inc(now - reported);
      reported = now;
    },
  });
}
