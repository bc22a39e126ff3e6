/**
 * Scenario 4, idle connections: N idle WebSockets (or SSE streams) on one
 * instance; the server's resident memory per connection and its CPU while idle.
 */
import { token, type RunningSystem } from '../systems.ts';
import { loopbacks, startSubscribers } from '../load.ts';
import { cpuMs, rssBytes, treePssBytes } from '../proc.ts';

export interface IdleResult {
  system: string;
  transport: 'websocket' | 'sse';
  connections: number;
  /** The idle instance before any connection, its embedded database included (PSS of its process tree), in MB. */
  instanceMB: number;
  bytesPerConnection: number;
  /** Cores used while the connections sit idle. */
  idleCores: number;
  dropped: number;
}

const SETTLE_MS = 3000;
const IDLE_MS = 5000;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens `connections` idle connections to `system` and measures it. */
export async function idle(system: RunningSystem, transport: IdleResult['transport'], connections: number): Promise<IdleResult> {
  const channel = 'idle';
  // Measuring a resting process is the point here: these pauses are the measurement window, not a wait for an event.
  await pause(SETTLE_MS);
  const rss0 = rssBytes(system.pid);
  const instanceMB = treePssBytes(system.pid) / 1048576;
  const url =
    transport === 'sse'
      ? `${system.httpUrl}/v1/sse?channel=${channel}&token=${await token()}`
      : await system.wsUrl(channel);
  const pool = await startSubscribers(2, {
    url,
    protocol: transport === 'sse' ? 'pgmesh-sse' : system.protocol,
    count: connections,
    channel,
    localAddresses: loopbacks(8),
    sampleEvery: 1,
    concurrency: 64,
  });
  try {
    await pause(SETTLE_MS);
    const rss1 = rssBytes(system.pid);
    const cpu0 = cpuMs(system.pid);
    await pause(IDLE_MS);
    const idleCores = (cpuMs(system.pid) - cpu0) / IDLE_MS;
    await pool.fresh();
    return {
      system: system.name,
      transport,
      connections,
      instanceMB,
      bytesPerConnection: (rss1 - rss0) / connections,
      idleCores,
      dropped: pool.closed(),
    };
  } finally {
    await pool.stop();
  }
}
