/**
 * The benchmark suite: `npm run bench` (full: ~45 min) or `npm run bench -- --quick`
 * (~2-3 min). Runs every scenario against pgmesh and the peer on one machine, one
 * Postgres, taking turns, and prints tables; writes bench/results/<date>.json and
 * .svg. With --check it exits 1 when pgmesh lost or reordered a message, or fell
 * below the peer measured in the same run.
 *
 *   --quick        small sizes, one run each
 *   --check        fail on loss/duplicates, or pgmesh below the peer
 *   --runs N       rounds to take the median of (default 3, quick 1)
 *   --only a,b     scenarios: fanout, cross, floor, durable, idle, hostile, storm, reconnect; and on
 *                  demand only, size, storm-size, reconnect-size, ceiling and bystander (all five:
 *                  `--only scale`)
 *   --systems a,b  the systems to run (e.g. pgmesh-node,ws-ceiling); cross-instance takes the
 *                  pgmesh-<runtime> and socketio ones
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { freshDatabase, postgresServer } from '../test/harness/postgres.ts';
import { ROOT } from '../test/harness/process.ts';
import { chart, formatTables, type Results } from './report.ts';
import { cross, type CrossResult, type CrossShape } from './scenarios/cross.ts';
import { durable, type DurableResult } from './scenarios/durable.ts';
import { fanout, MERCURE_BENCH_KEY, type FanoutResult } from './scenarios/fanout.ts';
import { idle, type IdleResult } from './scenarios/idle.ts';
import { hostile, type HostileResult } from './scenarios/hostile.ts';
import { storm, type StormResult } from './scenarios/storm.ts';
import { ceilingOfStatement, ceilingThroughPgmesh, type CeilingResult } from './scenarios/ceiling.ts';
import { bystander, type BystanderResult } from './scenarios/bystander.ts';
import { atSize, type AtSizeResult } from './scenarios/at-size.ts';
import { reconnectStorm, type ReconnectGenerator, type ReconnectResult } from './scenarios/reconnect.ts';
import { startFloor, startPgmesh, startSystem, type RunningSystem, type SystemName } from './systems.ts';
import type { RuntimeName } from '../test/harness/process.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const check = args.includes('--check');
const runsArg = args.indexOf('--runs');
const runs = runsArg >= 0 ? Number(args[runsArg + 1]) : quick ? 1 : 3;
const onlyArg = args.indexOf('--only');
// `scale` names the scenarios at size, run on demand only (issue 25): not in the default or quick run.
const SCALE = ['size', 'storm-size', 'reconnect-size', 'ceiling', 'bystander'];
const only = onlyArg >= 0 ? args[onlyArg + 1]!.split(',').flatMap((name) => (name === 'scale' ? SCALE : [name])) : ['fanout', 'cross', 'floor', 'durable', 'idle', 'hostile', 'storm', 'reconnect'];

/** pgmesh on each runtime over DATABASE_URL, on the embedded Postgres, and on PGlite: the durable and idle scenarios' rows. */
const PGMESH_STORES: SystemName[] = [
  'pgmesh-bun',
  'pgmesh-node',
  'pgmesh-deno',
  'pgmesh-bun-embedded',
  'pgmesh-node-embedded',
  'pgmesh-deno-embedded',
  'pgmesh-bun-pglite',
];

// This machine allows 20,000 open files per process: 19,000 idle sockets is the most one server can hold here.
const PLAN = quick
  ? {
      fanoutSizes: [1000],
      fanoutSeconds: 4,
      fanoutSystems: ['pgmesh-bun', 'pgmesh-node', 'pgmesh-deno', 'socketio', 'bun-ceiling'] as SystemName[],
      fanoutSse: ['pgmesh-bun'] as SystemName[],
      crossCases: [['in-order', 1000], ['in-order', 10_000], ['single-posts', 1000]] as [CrossShape, number][],
      crossSeconds: 4,
      crossPerInstance: 10,
      crossKinds: ['bun', 'socketio'] as ('socketio' | RuntimeName)[],
      crossLadder: [] as number[],
      crossLadderSeconds: 0,
      durableSeconds: 4,
      durableSystems: ['pgmesh-bun', 'pgmesh-bun-embedded'] as SystemName[],
      idleWs: 5000,
      idleSse: 5000,
      idleSystems: ['pgmesh-bun', 'pgmesh-bun-embedded', 'socketio'] as SystemName[],
      hostileSystems: ['pgmesh-bun'] as SystemName[],
      hostileSeconds: 4,
      mercureSystems: ['pgmesh-bun'] as SystemName[],
      stormSystems: ['pgmesh-bun'] as SystemName[],
      stormClients: 2000,
      floorRuntimes: ['bun'] as RuntimeName[],
      floorSeconds: 4,
      ceilingInstances: [1, 3],
      ceilingSeconds: 3,
      sizeRuntimes: ['bun'] as RuntimeName[],
      sizeInstances: 2,
      sizePerInstance: 2000,
      sizeSteady: { rate: 100, seconds: 3 },
      bystanderInstances: 4,
      bystanderRate: 5000,
      bystanderSeconds: 4,
      reconnectInstances: 3,
      reconnectPerInstance: 1000,
      reconnectTraffic: { rooms: 10, rate: 50 },
    }
  : {
      fanoutSizes: [1000, 5000, 10_000],
      fanoutSeconds: 10,
      fanoutSystems: ['pgmesh-bun', 'pgmesh-bun-js-fanout', 'pgmesh-node', 'pgmesh-deno', 'socketio', 'bun-ceiling', 'ws-ceiling'] as SystemName[],
      fanoutSse: ['pgmesh-bun', 'pgmesh-node', 'pgmesh-deno'] as SystemName[],
      crossCases: [['in-order', 1000], ['in-order', 10_000], ['single-posts', 1000], ['single-posts', 5000]] as [CrossShape, number][],
      crossSeconds: 10,
      crossPerInstance: 10,
      crossKinds: ['bun', 'node', 'deno', 'socketio'] as ('socketio' | RuntimeName)[],
      // The highest rate each system holds for 30 s with zero loss: climb until it does not.
      crossLadder: [5000, 10_000, 20_000, 40_000, 80_000],
      crossLadderSeconds: 30,
      durableSeconds: 10,
      durableSystems: [...PGMESH_STORES, 'bun-ceiling', 'ws-ceiling'] as SystemName[],
      idleWs: 19_000,
      idleSse: 5000,
      idleSystems: [...PGMESH_STORES, 'socketio', 'bun-ceiling'] as SystemName[],
      hostileSystems: ['pgmesh-bun', 'pgmesh-node', 'pgmesh-deno'] as SystemName[],
      hostileSeconds: 10,
      mercureSystems: ['pgmesh-bun', 'pgmesh-node', 'pgmesh-deno'] as SystemName[],
      stormSystems: ['pgmesh-bun', 'pgmesh-node', 'pgmesh-bun-embedded'] as SystemName[],
      stormClients: 10_000,
      floorRuntimes: ['bun', 'node', 'deno'] as RuntimeName[],
      floorSeconds: 10,
      ceilingInstances: [1, 3, 6],
      ceilingSeconds: 8,
      sizeRuntimes: ['bun', 'node'] as RuntimeName[],
      sizeInstances: 5,
      // What each instance's open-file limit here (20,000) takes, less its 5% reserve, less a margin.
      sizePerInstance: 18_900,
      sizeSteady: { rate: 10, seconds: 10 },
      bystanderInstances: 8,
      bystanderRate: 10_000,
      bystanderSeconds: 10,
      reconnectInstances: 3,
      reconnectPerInstance: 3000,
      reconnectTraffic: { rooms: 30, rate: 100 },
    };

/**
 * The reconnect storm at the issue's size (`--only reconnect-size`): 5 instances × 10,000 clients, 100 rooms
 * of 500, 20 msg/s (10,000 deliveries/s). At 100 msg/s the 50,000 clients' processes and the instances
 * already took 1.8 of this machine's 2 cores before the storm, and the storm measured the machine. The
 * clients are the native generator's (its reconnect mode); with --quick, 3 × 3,000, which CI runs to keep
 * that generator counting right.
 */
const RECONNECT_AT_SIZE = quick
  ? { instances: 3, perInstance: 3_000, traffic: { rooms: 30, rate: 50 }, generator: 'native' as const }
  : { instances: 5, perInstance: 10_000, traffic: { rooms: 100, rate: 20 }, generator: 'native' as const };

// --systems a,b: run every scenario over these systems instead of the plan's (the cross-instance
// one over those of them that can form a cluster: pgmesh-bun/node/deno and socketio).
const systemsArg = args.indexOf('--systems');
if (systemsArg >= 0) {
  const chosen = args[systemsArg + 1]!.split(',') as SystemName[];
  PLAN.fanoutSystems = chosen;
  PLAN.durableSystems = chosen;
  PLAN.idleSystems = chosen;
  PLAN.hostileSystems = chosen.filter((name) => name.startsWith('pgmesh'));
  PLAN.stormSystems = chosen.filter((name) => name.startsWith('pgmesh'));
  PLAN.mercureSystems = chosen.filter((name) => /^pgmesh-(bun|node|deno)$/.test(name));
  PLAN.sizeRuntimes = chosen.flatMap((name) => (/^pgmesh-(bun|node|deno)$/.test(name) ? [name.slice(7) as RuntimeName] : []));
  PLAN.floorRuntimes = PLAN.sizeRuntimes;
  PLAN.crossKinds = chosen.flatMap((name) => (name === 'socketio' ? ['socketio' as const] : /^pgmesh-(bun|node|deno)$/.test(name) ? [name.slice(7) as RuntimeName] : []));
}

const log = (...a: unknown[]) => console.error('bench:', ...a);
/** A pgmesh with its Mercure hub on, anonymous subscribers allowed (the Mercure rows). */
const MERCURE_ENV = { MERCURE_PUBLISHER_JWT_KEY: MERCURE_BENCH_KEY, MERCURE_ANONYMOUS: '1' };

/** The result whose `key` is the median of the rounds. */
function median<T>(rounds: T[], key: (t: T) => number): T {
  const sorted = [...rounds].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Runs every case once per round, the cases taking turns within each round (so a slow spell of
 * the shared host falls on all of them, not on one case's rounds), and gives each case's median.
 */
async function takingTurns<C, R>(cases: readonly C[], run: (c: C, round: number) => Promise<R>, key: (r: R) => number): Promise<R[]> {
  const rounds = cases.map((): R[] => []);
  for (let round = 1; round <= runs; round++) {
    for (const [i, c] of cases.entries()) rounds[i]!.push(await run(c, round));
  }
  return rounds.map((caseRounds) => median(caseRounds, key));
}

async function withSystem<T>(name: SystemName, fn: (s: RunningSystem, db: string) => Promise<T>, env: Record<string, string> = {}): Promise<T> {
  const db = await freshDatabase();
  const system = await startSystem(name, db, env);
  try {
    return await fn(system, db);
  } finally {
    await system.stop();
  }
}

async function runFanout(): Promise<FanoutResult[]> {
  const out: FanoutResult[] = [];
  type Case = [SystemName, FanoutResult['transport'], NonNullable<FanoutResult['publishing']>];
  const cases: Case[] = [
    ...PLAN.fanoutSystems.map((name): Case => [name, 'websocket', 'batches']),
    ...PLAN.fanoutSse.filter((name) => systemsArg < 0 || PLAN.fanoutSystems.includes(name)).map((name): Case => [name, 'sse', 'batches']),
    // Mercure beside pgmesh's own SSE on one runtime, both fed by single POSTs (Mercure has no batches).
    ...PLAN.mercureSystems.filter((name) => systemsArg < 0 || PLAN.fanoutSystems.includes(name)).flatMap((name): Case[] => [[name, 'sse', 'single POSTs'], [name, 'mercure', 'single POSTs']]),
  ];
  for (const size of PLAN.fanoutSizes) {
    const medians = await takingTurns(
      cases,
      ([name, transport, publishing], round) => {
        log(`fan-out ${name} ${transport} (${publishing}) ${size} subscribers, round ${round}`);
        return withSystem(name, (s) => fanout(s, size, PLAN.fanoutSeconds, transport, 2, publishing), publishing === 'single POSTs' ? MERCURE_ENV : {});
      },
      (r) => r.deliveriesPerSec,
    );
    out.push(...medians);
  }
  return out;
}

type ClusterKind = 'socketio' | RuntimeName | `floor-${RuntimeName}`;

async function cluster(kind: ClusterKind): Promise<{ instances: RunningSystem[]; stop: () => Promise<void> }> {
  const db = await freshDatabase();
  let instances: RunningSystem[];
  if (kind.startsWith('floor-')) {
    // The first creates the floor's table; the other two start once it is there.
    const runtime = kind.slice(6) as RuntimeName;
    const first = await startFloor(runtime, db);
    instances = [first, ...(await Promise.all([1, 2].map(() => startFloor(runtime, db))))];
  } else if (kind === 'socketio') {
    // One at a time: the peer's Postgres adapter creates its table with CREATE TABLE IF NOT
    // EXISTS, which races (a duplicate pg_type key) when three processes start at once.
    instances = [];
    for (let i = 0; i < 3; i++) instances.push(await startSystem('socketio', db));
  } else {
    instances = await Promise.all([0, 1, 2].map((i) => startPgmesh(kind as RuntimeName, db, { MESH_INSTANCE_ID: `bench${i}` })));
  }
  return { instances, stop: async () => void (await Promise.all(instances.map((i) => i.stop()))) };
}

async function runCross(): Promise<CrossResult[]> {
  const out: CrossResult[] = [];
  for (const [shape, rate] of PLAN.crossCases) {
    const medians = await takingTurns(
      PLAN.crossKinds,
      async (kind, round) => {
        log(`cross-instance ${kind} ${shape} ${rate} msg/s, round ${round}`);
        const c = await cluster(kind);
        try {
          return await cross(c.instances, rate, PLAN.crossSeconds, PLAN.crossPerInstance, shape);
        } finally {
          await c.stop();
        }
      },
      (r) => r.p99,
    );
    out.push(...medians);
  }
  return out;
}

/**
 * Latency against its floor (issue 25, item 7): pgmesh and the bare pipeline on the same runtime
 * (floor-<runtime>: insert + notify per POST, LISTEN, send), three instances each, the same
 * publishers at 1,000 msg/s, taking turns; the report gives pgmesh's p99 as a ratio to the floor's.
 */
async function runFloor(): Promise<CrossResult[]> {
  const out: CrossResult[] = [];
  for (const runtime of PLAN.floorRuntimes) {
    for (const shape of ['in-order', 'single-posts'] as const) {
      const medians = await takingTurns(
        [runtime, `floor-${runtime}`] as ClusterKind[],
        async (kind, round) => {
          log(`floor: ${kind} ${shape} 1000 msg/s, round ${round}`);
          const c = await cluster(kind);
          try {
            return await cross(c.instances, 1000, PLAN.floorSeconds, PLAN.crossPerInstance, shape);
          } finally {
            await c.stop();
          }
        },
        (r) => r.p99,
      );
      out.push(...medians);
    }
  }
  return out;
}

/**
 * The highest rate of the ladder each system holds for the whole period with nothing
 * lost and the publisher on pace; the first step it failed is kept too (held: false).
 */
async function runCrossMax(): Promise<CrossResult[]> {
  const out: CrossResult[] = [];
  for (const kind of ['bun', 'socketio'] as const) {
    let best: CrossResult | undefined;
    for (const rate of PLAN.crossLadder) {
      log(`cross-instance max rate: ${kind} at ${rate} msg/s for ${PLAN.crossLadderSeconds} s`);
      const c = await cluster(kind);
      let r: CrossResult;
      try {
        r = await cross(c.instances, rate, PLAN.crossLadderSeconds, PLAN.crossPerInstance);
      } finally {
        await c.stop();
      }
      if (r.lost > 0 || r.achievedRate < 0.95 * rate) {
        if (best) out.push(best);
        out.push({ ...r, held: false });
        best = undefined;
        break;
      }
      best = { ...r, held: true };
    }
    if (best) out.push(best);
  }
  return out;
}

function runDurable(): Promise<DurableResult[]> {
  const cases: [SystemName, DurableResult['mode'], boolean][] = [];
  for (const name of PLAN.durableSystems) for (const mode of ['single', 'batch100'] as const) cases.push([name, mode, true]);
  // What group commit buys, on the first system.
  if (PLAN.durableSystems.includes('pgmesh-bun')) cases.push(['pgmesh-bun', 'single', false], ['pgmesh-bun', 'batch100', false]);
  // Mercure's form POSTs beside /v1/mesh/publish's single POSTs, on the same runtimes.
  for (const name of PLAN.mercureSystems) cases.push([name, 'mercure', true]);
  return takingTurns(
    cases,
    ([name, mode, groupCommit], round) => {
      log(`durable ${name} ${mode} group commit ${groupCommit ? 'on' : 'off'}, round ${round}`);
      return withSystem(name, (s) => durable(s, mode, groupCommit, PLAN.durableSeconds), { MESH_GROUP_COMMIT: String(groupCommit), ...(mode === 'mercure' ? MERCURE_ENV : {}) });
    },
    (r) => r.messagesPerSec,
  );
}

function runIdle(): Promise<IdleResult[]> {
  const cases: [SystemName, IdleResult['transport'], number][] = PLAN.idleSystems.map((s) => [s, 'websocket', PLAN.idleWs]);
  cases.push(['pgmesh-bun', 'sse', PLAN.idleSse]);
  return takingTurns(
    cases,
    ([name, transport, count], round) => {
      log(`idle ${name} ${count} ${transport}, round ${round}`);
      return withSystem(name, (s) => idle(s, transport, count));
    },
    (r) => r.bytesPerConnection,
  );
}

async function runHostile(): Promise<HostileResult[]> {
  const out: HostileResult[] = [];
  for (const name of PLAN.hostileSystems) {
    const rounds: HostileResult[][] = [];
    for (let round = 1; round <= runs; round++) {
      log(`under attack ${name}, round ${round}`);
      rounds.push(await withSystem(name, (s) => hostile(s, PLAN.hostileSeconds)));
    }
    // The round whose attacked p99 is the median, both of its rows (quiet and attacked come from one instance).
    out.push(...median(rounds, (r) => r[1]!.p99));
  }
  return out;
}

async function runStorm(): Promise<StormResult[]> {
  const out: StormResult[] = [];
  for (const name of PLAN.stormSystems) {
    const rounds: StormResult[] = [];
    for (let round = 1; round <= runs; round++) {
      log(`connect storm ${name}, round ${round}`);
      rounds.push(await withSystem(name, (s) => storm(s, PLAN.stormClients)));
    }
    out.push(median(rounds, (r) => r.perSec));
  }
  return out;
}

/**
 * A connect storm of all the connections one instance takes (its file limit less its reserve), generators
 * natively, tokens signed beforehand; taking turns, the publisher POSTs to the stormed instance's main port,
 * to its publish thread (MESH_PUBLISH_PORT), then to a second instance that holds no clients (what a
 * deployment gets by routing its server API apart).
 */
async function runStormAtSize(): Promise<StormResult[]> {
  const ways = ['beside them', 'through its publish thread', 'through another instance'] as const;
  const rounds: StormResult[][] = ways.map(() => []);
  for (let round = 1; round <= runs; round++) {
    for (const [i, way] of ways.entries()) {
      log(`connect storm at size: pgmesh-bun, ${PLAN.sizePerInstance} clients, publisher ${way}, round ${round}`);
      // 512 connecting at once per process: with 64, each client's wait for its presence writes, not the server, set the rate.
      const run = (s: RunningSystem) => storm(s, PLAN.sizePerInstance, { generator: 'native', concurrency: 512 });
      rounds[i]!.push(
        await withSystem(
          'pgmesh-bun',
          async (s, db) => {
            if (way === 'beside them') return run(s);
            if (way === 'through its publish thread') return { ...(await run({ ...s, publishUrl: s.threadPublishUrl! })), system: `${s.name}, publishing through its publish thread` };
            const api = await startPgmesh('bun', db, { MESH_INSTANCE_ID: 'api-apart' });
            try {
              return { ...(await run({ ...s, publishUrl: api.publishUrl })), system: `${s.name}, publishing through another instance` };
            } finally {
              await api.stop();
            }
          },
          way === 'through its publish thread' ? { MESH_PUBLISH_PORT: '0' } : {},
        ),
      );
    }
  }
  return rounds.map((r) => ({ ...median(r, (x) => x.perSec), publishP99Rounds: r.map((x) => x.publishP99) }));
}

/** Instances filled to their limit, idle, then one message and a steady rate to all of their connections. */
async function runAtSize(): Promise<AtSizeResult[]> {
  const out: AtSizeResult[] = [];
  for (const runtime of PLAN.sizeRuntimes) {
    const rounds: AtSizeResult[] = [];
    for (let round = 1; round <= runs; round++) {
      log(`at size: ${PLAN.sizeInstances} pgmesh-${runtime} instances × ${PLAN.sizePerInstance} connections, round ${round}`);
      const db = await freshDatabase();
      const instances = await Promise.all(Array.from({ length: PLAN.sizeInstances }, (_, i) => startPgmesh(runtime, db, { MESH_INSTANCE_ID: `size${i}` })));
      try {
        rounds.push(await atSize(instances, db, PLAN.sizePerInstance, PLAN.sizeSteady));
      } finally {
        await Promise.all(instances.map((i) => i.stop()));
      }
    }
    out.push(median(rounds, (r) => r.onceP99));
  }
  return out;
}

/**
 * A reconnect storm after SIGKILL and after SIGTERM, each on a cluster of its own: pgmesh-bun instances behind the
 * clients' round robin, the publisher POSTing to the survivors; with `ways`, the same again with the publisher on
 * the survivors' publish threads (MESH_PUBLISH_PORT) and on an instance holding no clients.
 */
type PublishWay = 'survivors' | 'threads' | 'apart';
async function runReconnect(shape: { instances: number; perInstance: number; traffic: { rooms: number; rate: number }; generator?: ReconnectGenerator }, ways: PublishWay[] = ['survivors']): Promise<ReconnectResult[]> {
  const out: ReconnectResult[] = [];
  const said = { survivors: '', threads: ", publishing through the survivors' publish threads", apart: ', publishing through another instance' };
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    // The ways take turns within each round, so a slow spell of the shared host falls on all of them.
    const rounds: ReconnectResult[][] = ways.map(() => []);
    for (let round = 1; round <= runs; round++) {
      for (const [i, way] of ways.entries()) {
        log(`reconnect storm: ${shape.instances} pgmesh-bun instances × ${shape.perInstance} clients, ${signal} one${said[way]}, round ${round}`);
        const db = await freshDatabase();
        const env: Record<string, string> = way === 'threads' ? { MESH_PUBLISH_PORT: '0' } : {};
        const instances = await Promise.all(Array.from({ length: shape.instances }, (_, n) => startPgmesh('bun', db, { MESH_INSTANCE_ID: `back${n}`, ...env })));
        const api = way === 'apart' ? await startPgmesh('bun', db, { MESH_INSTANCE_ID: 'api-apart' }) : undefined;
        try {
          rounds[i]!.push(await reconnectStorm(instances, db, shape.perInstance, signal, shape.traffic, shape.generator, api));
        } finally {
          await Promise.all([...instances, ...(api ? [api] : [])].map((s) => s.stop()));
        }
      }
    }
    for (const r of rounds) out.push({ ...median(r, (x) => x.allBackSeconds), publishP99DuringRounds: r.map((x) => x.publishP99During) });
  }
  return out;
}

/** The ceiling of one Postgres: the statement alone, pgmesh on the harness's Postgres with 1, 3, 6 instances, and on its embedded server. */
async function runCeiling(): Promise<CeilingResult[]> {
  const out: CeilingResult[] = [];
  for (const mode of ['single', 'batch100'] as const) {
    for (const sessions of PLAN.ceilingInstances) {
      const rounds: CeilingResult[] = [];
      for (let round = 1; round <= runs; round++) {
        log(`ceiling: the publish statement alone, ${sessions} sessions, ${mode}, round ${round}`);
        const db = await freshDatabase();
        // A pgmesh instance migrates the database, then leaves it to the statement.
        await (await startPgmesh('bun', db)).stop();
        rounds.push(await ceilingOfStatement(db, sessions, mode, PLAN.ceilingSeconds));
      }
      out.push(median(rounds, (r) => r.messagesPerSec));
    }
    for (const count of PLAN.ceilingInstances) {
      const rounds: CeilingResult[] = [];
      for (let round = 1; round <= runs; round++) {
        log(`ceiling: ${count} pgmesh-bun instances on one Postgres, ${mode}, round ${round}`);
        const db = await freshDatabase();
        const instances = await Promise.all(Array.from({ length: count }, (_, i) => startPgmesh('bun', db, { MESH_INSTANCE_ID: `ceil${i}` })));
        try {
          rounds.push(await ceilingThroughPgmesh(instances, db, mode, PLAN.ceilingSeconds));
        } finally {
          await Promise.all(instances.map((i) => i.stop()));
        }
      }
      out.push(median(rounds, (r) => r.messagesPerSec));
    }
    const rounds: CeilingResult[] = [];
    for (let round = 1; round <= runs; round++) {
      log(`ceiling: one pgmesh-bun on its embedded Postgres, ${mode}, round ${round}`);
      const instance = await startPgmesh('bun', null, {}, 'pgmesh-bun-embedded');
      try {
        rounds.push(await ceilingThroughPgmesh([instance], null, mode, PLAN.ceilingSeconds));
      } finally {
        await instance.stop();
      }
    }
    out.push(median(rounds, (r) => r.messagesPerSec));
  }
  return out;
}

/** What one instance pays for the cluster's traffic it does not serve. */
async function runBystander(): Promise<BystanderResult[]> {
  const rounds: BystanderResult[] = [];
  for (let round = 1; round <= runs; round++) {
    log(`bystander: ${PLAN.bystanderInstances} pgmesh-bun instances, ${PLAN.bystanderRate} msg/s through all but the first, round ${round}`);
    const db = await freshDatabase();
    const instances = await Promise.all(Array.from({ length: PLAN.bystanderInstances }, (_, i) => startPgmesh('bun', db, { MESH_INSTANCE_ID: `by${i}` })));
    try {
      rounds.push(await bystander(instances, db, PLAN.bystanderRate, PLAN.bystanderSeconds));
    } finally {
      await Promise.all(instances.map((i) => i.stop()));
    }
  }
  return [median(rounds, (r) => r.bystanderCores)];
}

/** The reasons this run fails --check: lost or reordered messages (`broken`), and pgmesh measured below its peer (`slower`). */
function verdict(r: Results): { broken: string[]; slower: string[] } {
  const problems: string[] = [];
  const mine = (s: string) => s.startsWith('pgmesh');
  for (const f of r.fanout.filter((x) => mine(x.system))) {
    if (f.lost || f.errors || f.closed) problems.push(`fan-out ${f.system} ${f.subscribers}: lost ${f.lost}, out of order ${f.errors}, dropped ${f.closed}`);
  }
  for (const c of r.cross.filter((x) => mine(x.system) && x.held === undefined)) if (c.lost || c.errors) problems.push(`cross-instance ${c.system} ${c.shape} ${c.rate}/s: lost ${c.lost}, out of order ${c.errors}`);
  for (const d of r.durable.filter((x) => mine(x.system))) if (d.lost || d.failed) problems.push(`durable ${d.system} ${d.mode}: lost ${d.lost}, failed ${d.failed}`);
  for (const i of r.idle.filter((x) => mine(x.system))) if (i.dropped) problems.push(`idle ${i.system} ${i.transport}: ${i.dropped} dropped`);
  for (const h of r.hostile ?? []) if (h.goodFailed || h.poison5xx) problems.push(`under attack ${h.system} ${h.attack}: ${h.goodFailed} good publishes failed, ${h.poison5xx} poison requests answered 5xx`);
  for (const c of (r.floor ?? []).filter((x) => mine(x.system))) if (c.lost || c.errors) problems.push(`floor comparison ${c.system} ${c.shape}: lost ${c.lost}, out of order ${c.errors}`);
  for (const z of r.size ?? []) if (z.lost || z.outOfOrder) problems.push(`at size ${z.system} ${z.connections}: lost ${z.lost}, out of order ${z.outOfOrder}`);
  for (const c of r.ceiling ?? []) if (c.failed) problems.push(`ceiling ${c.driver} ${c.store} ${c.instances} ${c.mode}: ${c.failed} publishes failed`);
  for (const x of r.reconnect ?? [])
    if (x.lost || x.outOfOrder || x.publishFailed || !(x.allBackSeconds < 60) || !(x.presenceSettledSeconds < 60))
      problems.push(`reconnect storm ${x.signal} ${x.connections}: lost ${x.lost}, out of order ${x.outOfOrder}, ${x.publishFailed} publishes failed, all back in ${x.allBackSeconds} s, presence settled in ${x.presenceSettledSeconds} s`);
  for (const x of r.storm ?? []) if (x.failed || x.publishFailed || x.listed !== x.connections) problems.push(`connect storm ${x.system}: ${x.failed} clients failed, ${x.publishFailed} publishes failed, ${x.listed} of ${x.connections} listed`);
  const broken = problems.splice(0);
  // Below the peer measured in the same run.
  for (const size of new Set(r.fanout.map((f) => f.subscribers))) {
    const ours = r.fanout.find((f) => f.system === 'pgmesh-bun' && (f.transport ?? 'websocket') === 'websocket' && f.subscribers === size);
    const peer = r.fanout.find((f) => f.system === 'socketio' && f.subscribers === size);
    if (ours && peer && ours.deliveriesPerSec < peer.deliveriesPerSec) problems.push(`fan-out ${size}: pgmesh-bun ${n0(ours.deliveriesPerSec)}/s below Socket.IO ${n0(peer.deliveriesPerSec)}/s`);
  }
  for (const ours of r.cross.filter((c) => c.system === 'pgmesh-bun' && c.held === undefined)) {
    const peer = r.cross.find((c) => c.system === 'socketio' && c.rate === ours.rate && c.shape === ours.shape && c.held === undefined);
    // pgmesh's path holds a durable commit (an fsync) that the peer's does not: on this host a quick run of the
    // same build puts pgmesh's p99 0.2-1.2 ms above the peer's, so only more than that slack fails.
    if (peer && ours.p99 > peer.p99 + CROSS_SLACK_MS) problems.push(`cross-instance ${ours.shape} ${ours.rate}/s: pgmesh-bun p99 ${ours.p99.toFixed(1)} ms above Socket.IO ${peer.p99.toFixed(1)} ms + ${CROSS_SLACK_MS} ms`);
  }
  const ourIdle = r.idle.find((i) => i.system === 'pgmesh-bun' && i.transport === 'websocket');
  const peerIdle = r.idle.find((i) => i.system === 'socketio');
  if (ourIdle && peerIdle && ourIdle.bytesPerConnection > peerIdle.bytesPerConnection) problems.push(`idle: pgmesh-bun ${n0(ourIdle.bytesPerConnection)} B/connection above Socket.IO ${n0(peerIdle.bytesPerConnection)}`);
  return { broken, slower: problems };
}

/** How far pgmesh's cross-instance p99 may sit above the peer's before --check fails: the durable commit the peer does not make. */
const CROSS_SLACK_MS = 2;

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

async function main(): Promise<void> {
  log(`${quick ? 'quick' : 'full'} run, median of ${runs}; scenarios: ${only.join(', ')}`);
  await postgresServer();
  const results: Results = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    runs,
    machine: { cpus: cpus().length, node: process.version },
    fanout: only.includes('fanout') ? await runFanout() : [],
    cross: only.includes('cross') ? [...(await runCross()), ...(await runCrossMax())] : [],
    floor: only.includes('floor') ? await runFloor() : [],
    durable: only.includes('durable') ? await runDurable() : [],
    idle: only.includes('idle') ? await runIdle() : [],
    hostile: only.includes('hostile') ? await runHostile() : [],
    storm: [...(only.includes('storm') ? await runStorm() : []), ...(only.includes('storm-size') ? await runStormAtSize() : [])],
    size: only.includes('size') ? await runAtSize() : [],
    ceiling: only.includes('ceiling') ? await runCeiling() : [],
    bystander: only.includes('bystander') ? await runBystander() : [],
    reconnect: [
      ...(only.includes('reconnect') ? await runReconnect({ instances: PLAN.reconnectInstances, perInstance: PLAN.reconnectPerInstance, traffic: PLAN.reconnectTraffic }) : []),
      ...(only.includes('reconnect-size') ? await runReconnect(RECONNECT_AT_SIZE, ['survivors', 'threads', 'apart']) : []),
    ],
  };
  console.log(formatTables(results));
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = join(dir, `${results.date.slice(0, 19).replace(/:/g, '-')}${quick ? '-quick' : ''}`);
  writeFileSync(`${stem}.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${stem}.svg`, chart(results));
  log(`wrote ${stem}.json and .svg`);
  if (check) {
    const { broken, slower } = verdict(results);
    let stillSlower = slower;
    // A lost or reordered message fails at once. A comparison with the peer, on this shared
    // and noisy machine, is measured a second time (one stall of the host flips a quick run's
    // p99): it fails only if pgmesh is below the peer both times.
    if (broken.length === 0 && slower.length > 0) {
      for (const p of slower) log(`below the peer on the first measurement, measuring again: ${p}`);
      const again: Results = {
        ...results,
        fanout: slower.some((p) => p.startsWith('fan-out')) ? await runFanout() : [],
        cross: slower.some((p) => p.startsWith('cross-instance')) ? await runCross() : [],
        durable: [],
        idle: slower.some((p) => p.startsWith('idle')) ? await runIdle() : [],
      };
      console.log(formatTables(again));
      const second = verdict(again);
      broken.push(...second.broken);
      const failedFirst = new Set(slower.map((p) => p.split(':')[0]));
      stillSlower = second.slower.filter((p) => failedFirst.has(p.split(':')[0]));
    }
    for (const p of [...broken, ...stillSlower]) console.log(`CHECK FAILED: ${p}`);
    if (broken.length || stillSlower.length) process.exit(1);
    console.log('check passed: no message lost or out of order, pgmesh at or above the peer');
  }
  process.exit(0);
}

main().catch((err) => {
  console.error('bench failed:', err);
  process.exit(1);
});
