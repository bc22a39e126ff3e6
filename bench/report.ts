/** Turns benchmark results into a printed table, a JSON file and an SVG chart. */
import type { CrossResult } from './scenarios/cross.ts';
import type { DurableResult } from './scenarios/durable.ts';
import type { FanoutResult } from './scenarios/fanout.ts';
import type { IdleResult } from './scenarios/idle.ts';
import type { HostileResult } from './scenarios/hostile.ts';
import type { StormResult } from './scenarios/storm.ts';
import type { CeilingResult } from './scenarios/ceiling.ts';
import type { BystanderResult } from './scenarios/bystander.ts';
import type { AtSizeResult } from './scenarios/at-size.ts';
import type { ReconnectResult } from './scenarios/reconnect.ts';

export interface Results {
  date: string;
  mode: 'quick' | 'full';
  runs: number;
  machine: { cpus: number; node: string };
  fanout: FanoutResult[];
  cross: CrossResult[];
  durable: DurableResult[];
  idle: IdleResult[];
  /** Absent in results written before the scenario existed. */
  hostile?: HostileResult[];
  /** Absent in results written before the scenario existed. */
  storm?: StormResult[];
  /** pgmesh and the bare pipeline on the same runtime, cross-instance at 1,000 msg/s; absent in results written before it existed. */
  floor?: CrossResult[];
  /** The scale scenarios (`--only scale`); absent in results written before they existed. */
  size?: AtSizeResult[];
  ceiling?: CeilingResult[];
  bystander?: BystanderResult[];
  /** Absent in results written before the scenario existed. */
  reconnect?: ReconnectResult[];
}

/** A p99 of a row that is the median of several rounds: the median of the rounds' own, then each (the row is chosen by another key). */
const rounds = (own: number, each: number[] | undefined) => {
  if (each === undefined || each.length < 2) return n(own, 1);
  const sorted = [...each].sort((a, b) => a - b);
  return `${n(sorted[Math.floor(sorted.length / 2)]!, 1)} (${each.map((x) => n(x, 0)).join(' / ')})`;
};
const n = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

const DURABLE_REQUESTS: Record<DurableResult['mode'], string> = {
  single: '1 msg, 64 in flight',
  batch100: '100 msgs, 16 in flight',
  mercure: 'Mercure form POST, 64 in flight',
};

/** The results as Markdown tables (printed, and pasted into the README). */
export function formatTables(r: Results): string {
  const parts: string[] = [];
  if (r.fanout.length)
    parts.push(
      '### Fan-out (1 channel, 100-byte messages, one instance)\n\n' +
        table(
          ['system', 'transport', 'published as', 'published/s', 'subscribers', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'out of order', 'server cores', 'client cores'],
          r.fanout.map((f) => [f.system, f.transport ?? 'websocket', f.publishing ?? 'batches', n(f.publishedPerSec ?? NaN), f.subscribers, n(f.deliveriesPerSec), n(f.p50, 1), n(f.p99, 1), n(f.max, 1), f.lost, f.errors, n(f.serverCores, 2), n(f.clientCores, 2)]),
        ),
    );
  if (r.cross.length)
    parts.push(
      '### Cross-instance (3 instances on one Postgres, publishes through the first)\n\n' +
        table(
          ['system', 'publisher', 'rate msg/s', 'seconds', 'achieved', 'subscribers', 'p50 ms', 'p99 ms', 'max ms', 'POST p99 ms', 'lost', 'out of order'],
          r.cross.map((c) => [
            c.system,
            c.shape === 'single-posts' ? '16 workers, 1 msg per POST' : 'in order, batched POSTs',
            c.held === undefined ? c.rate : `${c.rate} (${c.held ? 'highest held' : 'not held'})`,
            c.seconds,
            n(c.achievedRate),
            c.subscribers,
            n(c.p50, 1),
            n(c.p99, 1),
            n(c.max, 1),
            n(c.answerP99 ?? NaN, 1),
            c.lost,
            c.errors,
          ]),
        ),
    );
  if (r.durable.length)
    parts.push(
      '### Durable publish (/v1/mesh/publish, acknowledged = committed)\n\n' +
        table(
          ['system', 'requests', 'group commit', 'messages/s', 'p50 ms', 'p99 ms', 'lost', 'failed', 'server cores'],
          r.durable.map((d) => [d.system, DURABLE_REQUESTS[d.mode], d.groupCommit ? 'on' : 'off', n(d.messagesPerSec), n(d.p50, 1), n(d.p99, 1), Number.isNaN(d.lost) ? 'stores nothing' : d.lost, d.failed, n(d.serverCores, 2)]),
        ),
    );
  if (r.idle.length)
    parts.push(
      '### Idle connections (instance MB: the server before any connection, its embedded database included)\n\n' +
        table(
          ['system', 'transport', 'connections', 'instance MB before', 'bytes/connection', 'idle cores', 'dropped'],
          r.idle.map((i) => [i.system, i.transport, i.connections, n(i.instanceMB ?? NaN, 1), n(i.bytesPerConnection), n(i.idleCores, 3), i.dropped]),
        ),
    );
  if (r.hostile?.length)
    parts.push(
      '### Under attack (good single POSTs at 2,000/s, alone and beside poison at full speed)\n\n' +
        table(
          ['system', 'attack', 'good/s', 'p50 ms', 'p99 ms', 'p99 vs quiet', 'good failed', 'poison sent', 'poison 5xx', 'poison frames', 'attacker sockets'],
          r.hostile.map((h) => {
            const quiet = r.hostile!.find((q) => q.system === h.system && q.attack === 'quiet');
            return [h.system, h.attack, n(h.goodPerSec), n(h.p50, 1), n(h.p99, 1), quiet && h.attack !== 'quiet' ? `${n(h.p99 / Math.max(quiet.p99, 1), 2)}x` : '-', h.goodFailed, n(h.poisonSent), h.poison5xx, n(h.poisonFrames), n(h.poisonSockets ?? 0)];
          }),
        ),
    );
  if (r.storm?.length)
    parts.push(
      '### Connect storm (each client: connect, auth, subscribe; 100 publishes/s beside it)\n\n' +
        table(
          ['system', 'clients', 'clients in/s', 'p50 ms', 'p99 ms', 'failed', 'publish p99 ms', 'publish failed', 'listed by the API', 'pgmesh cores', 'Postgres cores', 'generator cores'],
          r.storm.map((x) => [x.system, n(x.connections), n(x.perSec), n(x.p50, 1), n(x.p99, 1), x.failed, rounds(x.publishP99, x.publishP99Rounds), x.publishFailed, n(x.listed), n(x.serverCores ?? NaN, 2), n(x.postgresCores ?? NaN, 2), n(x.generatorCores ?? NaN, 2)]),
        ),
    );
  if (r.reconnect?.length)
    parts.push(
      '### Reconnect storm (one instance stopped; its clients back through a round robin with backoff, resuming with `since`; single POSTs to the rooms beside it)\n\n' +
        table(
          ['signal', 'instances', 'clients', 'moved', 'all back in s', 'back p50 ms', 'back p99 ms', 'back max ms', 'attempts failed', 'publish p99 before ms', 'publish p99 during ms', 'published', 'publish failed', 'presence exact in s', 'lost', 'out of order', 'most open files (limit)', 'most memory MB', 'cores before: pgmesh/Postgres/clients', 'cores during'],
          r.reconnect.map((x) => [
            x.publishingApart ? `${x.signal}, publishing through another instance` : x.publishingToThreads ? `${x.signal}, publishing through the survivors' publish threads` : x.signal,
            x.instances,
            n(x.connections),
            n(x.moved),
            n(x.allBackSeconds, 1),
            n(x.backP50),
            n(x.backP99),
            n(x.backMax),
            n(x.attemptsFailed),
            n(x.publishP99Before, 1),
            rounds(x.publishP99During, x.publishP99DuringRounds),
            n(x.published),
            x.publishFailed,
            n(x.presenceSettledSeconds, 1),
            x.lost,
            x.outOfOrder,
            `${n(x.maxOpenFiles)} (${n(x.openFileLimit)})`,
            n(x.maxRssBytes / 1e6),
            [x.coresBefore.pgmesh, x.coresBefore.postgres, x.coresBefore.generators].map((c) => n(c, 2)).join(' / '),
            [x.coresDuring.pgmesh, x.coresDuring.postgres, x.coresDuring.generators].map((c) => n(c, 2)).join(' / '),
          ]),
        ),
    );
  if (r.floor?.length) {
    const rows: (string | number)[][] = [];
    for (const ours of r.floor.filter((f) => f.system.startsWith('pgmesh-'))) {
      const runtime = ours.system.slice('pgmesh-'.length);
      const floor = r.floor.find((f) => f.system === `floor-${runtime}` && f.shape === ours.shape);
      if (!floor) continue;
      rows.push([
        runtime,
        ours.shape === 'single-posts' ? '16 workers, 1 msg per POST' : 'in order, batched POSTs',
        n(ours.p50, 1),
        n(floor.p50, 1),
        n(ours.p99, 1),
        n(floor.p99, 1),
        `${n(ours.p99 / floor.p99, 2)}×`,
        `${ours.lost}/${floor.lost}`,
      ]);
    }
    parts.push(
      '### Latency against its floor (3 instances, 1,000 msg/s; the floor: insert + notify per POST, LISTEN, send, on the same runtime)\n\n' +
        table(['runtime', 'publisher', 'pgmesh p50 ms', 'floor p50 ms', 'pgmesh p99 ms', 'floor p99 ms', 'p99 ratio', 'lost (pgmesh/floor)'], rows),
    );
  }
  if (r.size?.length)
    parts.push(
      '### At size (every connection a user of its own, subscribed to its user channel and one room; then one message, and a steady rate, to the room)\n\n' +
        table(
          ['system', 'instances', 'connections', 'connected in s', 'connections/s', 'bytes per connection', 'idle cores (busiest instance)', 'presence rows', 'presence bytes per connection', 'one message p99 ms', 'worst instance p99 ms', 'max ms', 'steady msg/s', 'steady p99 ms', 'max ms', 'lost', 'out of order', 'steady: pgmesh cores', 'steady: generator cores'],
          r.size.map((z) => [
            z.system,
            z.instances,
            n(z.connections),
            n(z.connectSeconds, 1),
            n(z.connectPerSec),
            n(z.bytesPerConnection),
            n(z.idleCoresMax, 3),
            n(z.presenceRows),
            n(z.presenceBytesPerConnection),
            n(z.onceP99, 1),
            n(z.onceWorstInstanceP99, 1),
            n(z.onceMax, 1),
            z.steadyRate,
            n(z.steadyP99, 1),
            n(z.steadyMax, 1),
            z.lost,
            z.outOfOrder,
            n(z.steadyServerCores ?? NaN, 2),
            n(z.steadyGeneratorCores ?? NaN, 2),
          ]),
        ),
    );
  if (r.ceiling?.length)
    parts.push(
      '### The ceiling of one Postgres (every instance publishing at once; `sql`: the publish statement alone on N sessions)\n\n' +
        table(
          ['through', 'store', 'instances / sessions', 'messages', 'messages/s', 'statements/s', 'msgs per statement', 'waiting on the counter', 'active sessions', 'POST p99 ms', 'failed', 'pgmesh cores', 'Postgres cores'],
          r.ceiling.map((c) => [
            c.driver,
            c.store,
            c.instances,
            c.mode === 'single' ? '1 per POST' : '100 per POST',
            n(c.messagesPerSec),
            n(c.statementsPerSec),
            n(c.groupSize, 1),
            n(c.lockWaiters, 2),
            n(c.active, 2),
            n(c.p99, 1),
            c.failed,
            n(c.serverCores, 2),
            n(c.postgresCores, 2),
          ]),
        ),
    );
  if (r.bystander?.length)
    parts.push(
      '### A bystander instance (no subscriber of what is published; every NOTIFY still reaches it)\n\n' +
        table(
          ['system', 'instances', 'published msg/s', 'notifications/s', 'bystander cores', 'bystander ms per 1k msgs', 'idle cores (nothing published)'],
          r.bystander.map((b) => [b.system, b.instances, n(b.publishedPerSec), n(b.notificationsPerSec), n(b.bystanderCores, 3), n(b.msPerThousand, 2), n(b.idleCores, 3)]),
        ),
    );
  return parts.join('\n\n');
}

/** A bar chart per scenario, as one SVG. */
export function chart(r: Results): string {
  const panels: { title: string; bars: { label: string; value: number }[]; unit: string }[] = [];
  const biggest = Math.max(0, ...r.fanout.map((f) => f.subscribers));
  panels.push({
    title: `Fan-out deliveries/s (${biggest.toLocaleString('en-US')} subscribers)`,
    unit: '/s',
    bars: r.fanout.filter((f) => f.subscribers === biggest).map((f) => ({ label: f.transport === 'sse' ? `${f.system} sse` : f.system, value: f.deliveriesPerSec })),
  });
  panels.push({
    title: 'Durable publish messages/s',
    unit: '/s',
    bars: r.durable.map((d) => ({ label: `${d.system} ${d.mode}${d.groupCommit ? '' : ' (no group commit)'}`, value: d.messagesPerSec })),
  });
  panels.push({ title: 'Idle memory, bytes per connection', unit: 'B', bars: r.idle.map((i) => ({ label: `${i.system} ${i.transport}`, value: i.bytesPerConnection })) });
  const width = 900;
  const barH = 22;
  let y = 40;
  const out: string[] = [`<text x="20" y="24" font-size="16" font-weight="bold">pgmesh benchmark ${r.date} (${r.mode}, median of ${r.runs})</text>`];
  for (const panel of panels.filter((p) => p.bars.length > 0)) {
    out.push(`<text x="20" y="${y + 16}" font-size="14" font-weight="bold">${panel.title}</text>`);
    y += 26;
    const max = Math.max(...panel.bars.map((b) => b.value), 1);
    for (const bar of panel.bars) {
      const w = Math.max(1, ((width - 420) * Math.max(0, bar.value)) / max);
      const fill = bar.label.startsWith('pgmesh') ? '#2a9d8f' : bar.label.endsWith('-ceiling') ? '#9aa5b1' : '#e76f51';
      out.push(`<text x="20" y="${y + 15}" font-size="12">${bar.label}</text>`);
      out.push(`<rect x="280" y="${y + 3}" width="${w.toFixed(1)}" height="${barH - 6}" fill="${fill}"/>`);
      out.push(`<text x="${(285 + w).toFixed(1)}" y="${y + 15}" font-size="12">${Math.round(bar.value).toLocaleString('en-US')}${panel.unit}</text>`);
      y += barH;
    }
    y += 14;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${out.join('')}</svg>\n`;
}
