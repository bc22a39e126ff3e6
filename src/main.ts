/**
 * Entry point on every runtime (`npm start`, `bun src/main.ts`, `deno task start`):
 * read the settings, start the instance, drain on SIGINT/SIGTERM.
 */
import { ConfigError, loadConfig } from './config.ts';
import { loadRuntime } from './runtime/detect.ts';
import { startMesh } from './server.ts';

try {
  const config = loadConfig(process.env);
  const runtime = await loadRuntime();
  const mesh = await startMesh(config, { runtime });
  // A bug on one connection's path must not end everyone's: logged and counted, and the process goes on.
  runtime.onUncaught((kind, err) => {
    mesh.metrics.uncaught(kind);
    mesh.log.error(kind === 'rejection' ? 'unhandled rejection' : 'uncaught exception', { err });
  });
  // Before the "listening" line: a signal sent as soon as it appears must find the drain in place
  // (the default action would kill the process and orphan the embedded Postgres).
  runtime.onShutdownSignal(async (signal) => {
    mesh.log.info('shutdown signal: draining', { signal });
    await mesh.drain().catch((err: unknown) => mesh.log.error('drain failed', { err }));
    process.exit(0);
  });
  // The one line on stdout: tests and scripts read the port from it.
  console.log(`pgmesh listening on ${mesh.url} (${mesh.runtime}, ${mesh.store.kind})`);
} catch (err) {
  console.error(err instanceof ConfigError ? `pgmesh: ${err.message}` : `pgmesh: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
