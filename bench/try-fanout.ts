import { postgresServer, freshDatabase } from '/work/main/test/harness/postgres.ts';
import { startSystem, type SystemName } from '/work/main/bench/systems.ts';
import { fanout } from '/work/main/bench/scenarios/fanout.ts';
await postgresServer();
for (const name of (process.argv[2] ?? 'pgmesh-bun,socketio,bun-ceiling').split(',') as SystemName[]) {
  const sys = await startSystem(name, await freshDatabase());
  try { console.log(JSON.stringify(await fanout(sys, Number(process.argv[3] ?? 1000), 5))); } catch (e) { console.log(name, 'failed', e); }
  await sys.stop();
}
process.exit(0);
