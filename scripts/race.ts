/**
 * `npm run race -- --minutes N [--seed S]`: the race harness (test/race.test.ts) seed after
 * seed for N minutes, or one seed replayed. A failure prints its seed; add it to
 * REGRESSION_SEEDS in the test so it stays fixed.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, ROOT } from '../test/harness/process.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' } } });
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes < 0) {
  console.error('race: --minutes takes a number of minutes');
  process.exit(2);
}
const env = { ...process.env, PGMESH_RACE_MINUTES: values.seed === undefined ? String(minutes) : '0', ...(values.seed === undefined ? {} : { PGMESH_RACE_SEED: values.seed }) };
const timeoutMs = Math.ceil(minutes * 60_000) + 300_000;
const run = spawnSync(join(BIN, 'bun'), ['test', '--timeout', String(timeoutMs), join(ROOT, 'test', 'race.test.ts')], { cwd: ROOT, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
