/**
 * `npm run fuzz -- --minutes N [--seed S]`: the fuzz suite (test/fuzz.test.ts) for N minutes
 * instead of its bounded budget, shared among the runtimes and entry points. A failure prints
 * its seed; add it to REGRESSION_SEEDS in the test so it stays fixed.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, ROOT } from '../test/harness/process.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' } } });
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error('fuzz: --minutes takes a positive number');
  process.exit(2);
}
const env = { ...process.env, PGMESH_FUZZ_MINUTES: String(minutes), ...(values.seed === undefined ? {} : { PGMESH_FUZZ_SEED: values.seed }) };
// Each property gets its share of the time; the test's own deadline leaves room for start and checks.
const timeoutMs = Math.ceil(minutes * 60_000) + 120_000;
const run = spawnSync(join(BIN, 'bun'), ['test', '--timeout', String(timeoutMs), join(ROOT, 'test', 'fuzz.test.ts')], { cwd: ROOT, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
