/**
 * The soak: a three-instance cluster on a real Postgres for
 * N minutes at a steady publish rate, with subscribers that stay and clients
 * that come and go all the time, the LISTEN session of an instance killed every
 * 30 s and Postgres restarted once. At the end: every acknowledged message
 * reached every staying subscriber once, in order; the servers' memory and
 * file descriptors are back near where they were after warm-up.
 *
 *   npm run soak                          10 minutes, 1,000 msg/s, 300 subscribers, three Bun instances
 *   npm run soak -- --minutes 2 --rate 500 --runtimes bun,node,deno
 *
 * Loopback only; bounded in time. Writes bench/results/soak-<date>.json and
 * exits 1 if anything acknowledged was lost or duplicated or a server leaked.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { freshDatabase, postgresServer, stopPostgresServer } from '../test/harness/postgres.ts';
import { ROOT, startProcess, type MeshProcess, type RuntimeName } from '../test/harness/process.ts';
import { loopbacks, payload, startSubscribers, type SubscriberPool } from './load.ts';
import { rssBytes } from './proc.ts';
import { token } from './systems.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const MINUTES = arg('--minutes', 10);
const RATE = arg('--rate', 1000);
const SUBSCRIBERS = arg('--subscribers', 300);
const CHURNERS = arg('--churners', 20);
// Three Bun instances hold 1,000 msg/s to 300 subscribers on a 2-core machine; Node and Deno fan
// out from JavaScript, and a mixed cluster falls behind the rate there (it still loses nothing).
const RUNTIMES = (args.includes('--runtimes') ? args[args.indexOf('--runtimes') + 1]! : 'bun,bun,bun').split(',') as RuntimeName[];
const KILL_EVERY_MS = 30_000;
const WARMUP_MS = 20_000;

const log = (...a: unknown[]) => console.error('soak:', ...a);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

interface Sample {
  rss: number;
  fds: number;
}

async function main(): Promise<void> {
  const server = await postgresServer();
  if (!server.stop) throw new Error('the soak restarts Postgres: run it with the embedded server (unset TEST_DATABASE_URL)');
  const databaseUrl = await freshDatabase();
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  const runtimes = RUNTIMES;
  const instances: MeshProcess[] = await Promise.all(
    runtimes.map((runtime, i) => startProcess(runtime, { DATABASE_URL: databaseUrl, MESH_INSTANCE_ID: `soak${i}`, MESH_LOG: 'warn', MESH_HEARTBEAT: '2s', MESH_MAX_BUFFERED: '64m' })),
  );
  const channel = 'soak';
  const pools: SubscriberPool[] = [];
  const stats = { acked: 0, refused: 0, retries: 0, listenKills: 0, churned: 0, churnFailures: 0, postgresRestarts: 0 };
  let running = true;
  try {
    for (const instance of instances) {
      pools.push(
        await startSubscribers(1, {
          url: `${instance.url.replace('http', 'ws')}/v1/ws?token=${await token()}`,
          protocol: 'pgmesh',
          count: Math.ceil(SUBSCRIBERS / instances.length),
          channel,
          localAddresses: loopbacks(2),
          sampleEvery: 100,
          concurrency: 32,
        }),
      );
    }
    log(`${SUBSCRIBERS} subscribers on ${runtimes.join(', ')}; ${MINUTES} min at ${RATE} msg/s`);

    // The publisher: in order, round robin over the instances; a refused publish is sent again
    // with the same sequence number, so the staying subscribers must see 0, 1, 2, … exactly.
    const publisher = (async () => {
      const start = performance.now();
      let turn = 0;
      while (running) {
        const due = Math.min(500, Math.floor(((performance.now() - start) / 1000) * RATE) - stats.acked);
        if (due <= 0) {
          await pause(2); // pacing to the rate
          continue;
        }
        const body = JSON.stringify(Array.from({ length: due }, (_, i) => ({ c: channel, d: payload(stats.acked + i) })));
        const target = instances[turn++ % instances.length]!;
        const res = await fetch(`${target.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).catch(() => null);
        if (res?.status === 200) {
          stats.acked += due;
        } else {
          const code = res ? ((await res.json().catch(() => ({}))) as { code?: string }).code : 'ERR_NETWORK';
          if (code === 'ERR_OUTCOME_UNKNOWN') throw new Error('a publish of unknown outcome: the soak cannot tell loss from duplication');
          stats.refused++;
          stats.retries += due;
          await pause(50);
        }
      }
    })();

    // Clients that come and go: connect to any instance, authenticate, subscribe with presence, leave.
    const jwt = await token();
    const churner = async (n: number) => {
      for (let i = 0; running; i++) {
        const target = instances[(n + i) % instances.length]!;
        try {
          await new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`${target.url.replace('http', 'ws')}/v1/ws?token=${jwt}`);
            const timer = setTimeout(() => (ws.close(), reject(new Error('churner timed out'))), 10_000);
            ws.onerror = () => reject(new Error('churner socket error'));
            ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', channel: `soak_room_${n % 5}`, presence: true }));
            ws.onmessage = (e) => {
              if (String(e.data).startsWith('{"op":"subscribe"')) {
                clearTimeout(timer);
                setTimeout(() => ws.close(), 200 + Math.random() * 800);
              }
            };
            ws.onclose = () => (clearTimeout(timer), resolve());
          });
          stats.churned++;
        } catch {
          stats.churnFailures++;
          await pause(200);
        }
      }
    };
    const churners = Array.from({ length: CHURNERS }, (_, n) => churner(n));

    await pause(WARMUP_MS);
    const baseline: Sample[] = instances.map((i) => ({ rss: rssBytes(i.child.pid!), fds: fds(i.child.pid!) }));
    log('baseline', baseline.map((b) => `${(b.rss / 1048576).toFixed(0)} MB, ${b.fds} fds`).join('; '));

    const end = Date.now() + MINUTES * 60_000 - WARMUP_MS;
    const restartAt = Date.now() + (end - Date.now()) / 2;
    let nextKill = Date.now() + KILL_EVERY_MS;
    let restarted = false;
    while (Date.now() < end) {
      await pause(1000); // the fault schedule's clock
      if (Date.now() >= nextKill) {
        const victim = `pgmesh-soak${stats.listenKills % instances.length}-listen`;
        await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${victim}`.catch(() => {});
        stats.listenKills++;
        nextKill += KILL_EVERY_MS;
      }
      if (!restarted && Date.now() >= restartAt) {
        restarted = true;
        log('restarting Postgres');
        await server.stop!();
        await pause(3000);
        await server.start!();
        stats.postgresRestarts++;
      }
      log(`acked ${stats.acked}, refused ${stats.refused}, churned ${stats.churned}, listen kills ${stats.listenKills}, min delivered ${Math.min(...pools.map((p) => p.min()))}`);
    }
    running = false;
    await publisher;
    await Promise.all(churners);

    // Everything acknowledged, delivered to every staying subscriber.
    const deadline = Date.now() + 60_000;
    while (pools.some((p) => p.min() < stats.acked) && Date.now() < deadline) await Promise.all(pools.map((p) => p.fresh()));
    await Promise.all(pools.map((p) => p.fresh()));
    const lost = Math.max(0, ...pools.map((p) => stats.acked - p.min()));
    const outOfSequence = pools.reduce((n, p) => n + p.errors(), 0);
    const disconnected = pools.reduce((n, p) => n + p.closed(), 0);
    await pause(5000); // let the servers settle before the last memory reading
    const final: Sample[] = instances.map((i) => ({ rss: rssBytes(i.child.pid!), fds: fds(i.child.pid!) }));
    const leaks = instances.flatMap((_, i) => {
      const b = baseline[i]!;
      const f = final[i]!;
      const out: string[] = [];
      if (f.rss > b.rss * 1.5 + 50 * 1048576) out.push(`${runtimes[i]}: RSS ${(b.rss / 1048576).toFixed(0)} -> ${(f.rss / 1048576).toFixed(0)} MB`);
      if (f.fds > b.fds + 30) out.push(`${runtimes[i]}: fds ${b.fds} -> ${f.fds}`);
      return out;
    });
    const result = {
      date: new Date().toISOString(),
      minutes: MINUTES,
      rate: RATE,
      achievedRate: Math.round(stats.acked / (MINUTES * 60)),
      subscribers: pools.reduce((n, p) => n + p.reports.reduce((m, r) => m + r.ready, 0), 0),
      churners: CHURNERS,
      ...stats,
      lost,
      outOfSequence,
      disconnected,
      runtimes,
      baseline: baseline.map((b, i) => ({ runtime: runtimes[i], rssMB: +(b.rss / 1048576).toFixed(1), fds: b.fds })),
      final: final.map((f, i) => ({ runtime: runtimes[i], rssMB: +(f.rss / 1048576).toFixed(1), fds: f.fds })),
      leaks,
    };
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `soak-${result.date.slice(0, 19).replace(/:/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
    log(`wrote ${file}`);
    const failures = [
      ...(lost > 0 ? [`${lost} acknowledged messages not delivered to every subscriber`] : []),
      ...(outOfSequence > 0 ? [`${outOfSequence} deliveries out of sequence (a duplicate, a gap or a reordering)`] : []),
      ...(disconnected > 0 ? [`${disconnected} staying subscribers were disconnected`] : []),
      ...leaks,
    ];
    if (failures.length > 0) {
      log(`FAILED:\n  ${failures.join('\n  ')}`);
      process.exitCode = 1;
    } else {
      log('passed: nothing acknowledged lost or duplicated; memory and descriptors back near the baseline');
    }
  } finally {
    running = false;
    await Promise.all(pools.map((p) => p.stop()));
    await Promise.all(instances.map((i) => i.stop()));
    await sql.end({ timeout: 1 }).catch(() => {});
    await stopPostgresServer();
  }
}

await main();
process.exit(process.exitCode ?? 0);
