/**
 * The PHP CLI for tests that run PHP. It is a system tool, not an npm package:
 * where it is missing the PHP tests say so in one line and are skipped, except
 * under PGMESH_REQUIRE_PHP=1 (what .ci/run sets), where a missing PHP fails them.
 */
import { execFile, spawnSync } from 'node:child_process';

const INSTALL = 'apt-get install -y php-cli php-curl php-pgsql';

function phpReady(): boolean {
  const probe = spawnSync('php', ['-m'], { encoding: 'utf8' });
  if (probe.status !== 0) return false;
  const modules = probe.stdout.toLowerCase().split('\n');
  return modules.includes('curl') && modules.includes('pdo_pgsql');
}

/** Whether the PHP tests run here. */
export const hasPhp = phpReady();
if (!hasPhp) {
  if (process.env.PGMESH_REQUIRE_PHP === '1') throw new Error(`PGMESH_REQUIRE_PHP=1 but no PHP CLI with curl and pdo_pgsql: ${INSTALL}`);
  console.warn(`PHP tests skipped: no PHP CLI with curl and pdo_pgsql here (${INSTALL})`);
}

/** Runs a PHP script without blocking the event loop; resolves with its exit status and output. */
export function runPhp(script: string, args: string[], env: Record<string, string> = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('php', [script, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const MERCURE_INSTALL = 'apt-get install -y php-symfony-mercure';

/** Whether Symfony's Mercure component (Debian's php-symfony-mercure, 0.6) is there for PHP to load. */
export const hasSymfonyMercure =
  hasPhp && spawnSync('php', ['-r', "exit(stream_resolve_include_path('Symfony/Component/Mercure/autoload.php') ? 0 : 1);"]).status === 0;
if (hasPhp && !hasSymfonyMercure) {
  if (process.env.PGMESH_REQUIRE_PHP === '1') throw new Error(`PGMESH_REQUIRE_PHP=1 but Symfony's Mercure component is missing: ${MERCURE_INSTALL}`);
  console.warn(`Symfony Mercure tests skipped: no php-symfony-mercure here (${MERCURE_INSTALL})`);
}
