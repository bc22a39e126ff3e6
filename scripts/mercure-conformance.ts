/**
 * `npm run mercure-conformance -- <dunglas/mercure checkout> [--ref <commit>]`: runs the Mercure
 * project's own conformance suite (conformance-tests/mercure.spec.ts, AGPL: read from your
 * checkout, never copied into this repository) against a pgmesh started here, in the npm
 * Chromium. With --ref, the suite as it was at that commit (bbf271c: the 0.x suite, URI
 * templates and `mercure` claims). @playwright/test is installed in a temporary folder.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import packagedChromium from '@sparticuz/chromium';
import { ROOT, startProcess } from '../test/harness/process.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { ref: { type: 'string' } } });
const checkout = positionals[0];
if (checkout === undefined) {
  console.error('usage: npm run mercure-conformance -- <path to a dunglas/mercure checkout> [--ref <commit>]');
  process.exit(2);
}
const path = join(checkout, 'conformance-tests', 'mercure.spec.ts');
// A work tree's file; else (--ref, or a bare clone) the file at that commit.
const spec =
  values.ref === undefined && existsSync(path) ? readFileSync(path, 'utf8') : execFileSync('git', ['-C', checkout, 'show', `${values.ref ?? 'HEAD'}:conformance-tests/mercure.spec.ts`], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'mercure-conformance-'));
writeFileSync(join(dir, 'mercure.spec.ts'), spec);
writeFileSync(join(dir, 'package.json'), '{"private":true}');
const version = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'playwright-core', 'package.json'), 'utf8')) as { version: string }).version;
execFileSync('npm', ['install', '--no-audit', '--no-fund', `@playwright/test@${version}`], { cwd: dir, stdio: 'inherit' });
const chromium = await packagedChromium.executablePath();
writeFileSync(
  join(dir, 'playwright.config.ts'),
  `export default { testDir: '.', timeout: 10000, reporter: 'list', use: { baseURL: process.env.BASE_URL, launchOptions: { executablePath: ${JSON.stringify(chromium)}, args: ['--headless=shell', '--no-sandbox', '--disable-gpu'] } }, projects: [{ name: 'chromium' }] };\n`,
);

// The suite's tokens: the reference hub's default key; 1.0's are issued by https://localhost for its hub.
const hub = await startProcess('node', {
  MERCURE_PUBLISHER_JWT_KEY: '!ChangeThisMercureHubJWTSecretKey!',
  MERCURE_ISSUERS: 'https://localhost',
  MERCURE_AUDIENCE: 'https://localhost/.well-known/mercure',
  MERCURE_ANONYMOUS: '1',
});
try {
  const run = spawnSync('npx', ['playwright', 'test'], { cwd: dir, stdio: 'inherit', env: { ...process.env, BASE_URL: `${hub.url}/.well-known/mercure`, CUSTOM_ID: '1' } });
  process.exitCode = run.status ?? 1;
} finally {
  await hub.stop();
}
