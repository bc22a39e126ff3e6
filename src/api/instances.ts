/**
 * The server API about the cluster's instances, from any of them: each one's
 * state and what it last reported (GET /instances), their counters over the
 * last 15 minutes (GET /instances/samples, what the console draws), and the
 * webhook queues with what every instance sent of them (GET /webhooks).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import type { Cluster, InstanceRow } from '../store/cluster.ts';
import { SAMPLES_KEPT_MS } from '../store/cluster.ts';
import { InstanceReport, InstanceSample } from '../console/instance-stats.ts';
import type { WebhookSenders } from '../hooks/webhook-senders.ts';
import { pusherAppOf } from '../store/webhooks.ts';
import { queryOf } from './json-body.ts';

const SamplesQuery = z.object({
  after: z.coerce.number({ error: 'after must be epoch milliseconds' }).nonnegative().optional(),
  step: z.coerce.number({ error: 'step must be a number' }).int().min(1).max(900).default(1),
});

/** An instance as the API shows it: `gone` once silent past the TTL (until it is reaped), else what it last reported. */
export interface InstanceView {
  id: string;
  region: string | null;
  state: InstanceReport['state'] | 'gone';
  startedAt: string;
  seenAt: string;
  report: InstanceReport | null;
}

function viewOf(row: InstanceRow): InstanceView {
  // A row written by another version that does not parse is shown without a report, not trusted.
  const report = InstanceReport.safeParse(row.stats);
  const parsed = report.success ? report.data : null;
  return { id: row.id, region: row.region, state: row.live ? (parsed?.state ?? 'ready') : 'gone', startedAt: row.startedAt, seenAt: row.seenAt, report: parsed };
}

/** GET /instances, GET /instances/samples, GET /webhooks. */
export function instancesRoutes(cluster: Cluster, options: { ttlMs: number; intervalMs: number; pusherApps: readonly string[]; webhooks?: WebhookSenders }): Hono {
  const app = new Hono();

  app.get('/instances', async (c) => {
    const rows = await cluster.instances();
    return c.json({ instances: rows.map(viewOf), ttlMs: options.ttlMs, intervalMs: options.intervalMs, pusherApps: options.pusherApps });
  });

  app.get('/instances/samples', async (c) => {
    const q = queryOf(c, SamplesQuery);
    const oldest = Date.now() - SAMPLES_KEPT_MS;
    const rows = await cluster.samples(Math.max(q.after ?? 0, oldest - 60_000), q.step);
    const samples = [];
    for (const row of rows) {
      const sample = InstanceSample.safeParse(row.sample);
      if (sample.success) samples.push({ instance: row.instance, at: row.at, ...sample.data });
    }
    // `last` is what the next call passes as `after` to get only what is new.
    return c.json({ samples, last: rows.at(-1)?.at ?? q.after ?? null });
  });

  app.get('/webhooks', async (c) => {
    const states = (await options.webhooks?.states()) ?? [];
    // What each live instance sent of each queue, added up: the queue itself is one for the cluster.
    const reports = (await cluster.instances()).filter((r) => r.live).map((r) => InstanceReport.safeParse(r.stats)).flatMap((r) => (r.success ? [r.data] : []));
    const targets = states.map(({ target, url, queue }) => {
      const sent = { sent: 0, failures: 0, expired: 0, dropped: 0 };
      for (const report of reports) {
        const mine = report.webhooks[target];
        if (mine !== undefined) for (const key of Object.keys(sent) as (keyof typeof sent)[]) sent[key] += mine[key];
      }
      return { target, app: pusherAppOf(target), url: shownUrl(url), ...queue, ...sent };
    });
    return c.json({ targets });
  });

  return app;
}

// A webhook URL may carry a secret in its query or its user part: the console shows where it goes, not how it gets in.
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
