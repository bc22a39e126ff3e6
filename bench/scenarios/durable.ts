/**
 * Scenario 3, durable publish throughput: messages/s that /v1/mesh/publish
 * acknowledges — each acknowledged message committed to the outbox — as
 * single-message POSTs with 64 in flight and as 100-message batch POSTs, driven
 * by autocannon; and Mercure updates, one form POST each with 64 in flight, as
 * Symfony apps publish them. Afterwards the outbox must hold every acknowledged message:
 * each id an answer named is looked up, not merely counted.
 *
 * The bare ceilings (bun-ceiling, ws-ceiling) take the same POSTs, parse them and
 * answer without storing anything: each runtime's HTTP limit on this machine, the
 * line pgmesh on that runtime is measured against.
 */
import autocannon from 'autocannon';
import postgres from 'postgres';
import type { RunningSystem } from '../systems.ts';
import { SignJWT } from 'jose';
import { payload } from '../load.ts';
import { MERCURE_BENCH_KEY } from './fanout.ts';
import { cpuMs } from '../proc.ts';

export interface DurableResult {
  system: string;
  mode: 'single' | 'batch100' | 'mercure';
  groupCommit: boolean;
  messagesPerSec: number;
  p50: number;
  p99: number;
  acked: number;
  /** Acknowledged messages missing from the outbox (must be 0; NaN for a ceiling, which stores nothing), and requests answered with an error. */
  lost: number;
  failed: number;
  serverCores: number;
}

/** How many of `ids` the outbox holds: by SQL where the bench reaches the database, else through the history API. */
async function storedCount(system: RunningSystem, ids: number[]): Promise<number> {
  if (system.databaseUrl !== null) {
    const sql = postgres(system.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const [found] = await sql`select count(*)::int8 as n from mesh_message where id in (select json_array_elements_text(${JSON.stringify(ids)}::text::json)::int8)`;
      return Number(found!.n);
    } finally {
      await sql.end();
    }
  }
  // The embedded store listens on a private socket: read the channel back a page at a time.
  const wanted = new Set(ids);
  let last = -Infinity;
  let since = Infinity;
  for (const id of ids) {
    if (id > last) last = id;
    if (id < since) since = id;
  }
  since -= 1;
  let found = 0;
  while (since < last) {
    const res = await fetch(`${system.httpUrl}/v1/mesh/channels/durable/history?since=${since}&limit=1000`);
    const page = (await res.json()) as { messages: { id: number }[]; position: number };
    for (const m of page.messages) if (wanted.has(m.id)) found++;
    if (page.messages.length === 0) break;
    since = page.messages.at(-1)!.id;
  }
  return found;
}

/** Runs durable publishing against a pgmesh instance whose store is new (a database of its own, or its embedded one). */
export async function durable(
  system: RunningSystem,
  mode: DurableResult['mode'],
  groupCommit: boolean,
  seconds: number,
): Promise<DurableResult> {
  const perRequest = mode === 'batch100' ? 100 : 1;
  const stores = system.protocol !== 'ceiling';
  const mercure = mode === 'mercure';
  const body = mercure
    ? new URLSearchParams({ topic: 'durable', data: payload(0) }).toString()
    : JSON.stringify(mode === 'single' ? { c: 'durable', d: payload(0) } : Array.from({ length: 100 }, (_, i) => ({ c: 'durable', d: payload(i) })));
  const headers = mercure
    ? { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(MERCURE_BENCH_KEY))}` }
    : { 'content-type': 'application/json' };
  // A Mercure answer is the update's id, `#<outbox id>`; pgmesh's is {"ids": [...]}.
  const idsOf = (text: string): number[] => (mercure ? [Number(text.slice(1))] : (JSON.parse(text) as { ids: number[] }).ids);
  {
    const ackedIds: number[] = [];
    const cpu0 = cpuMs(system.pid);
    const result = await autocannon({
      url: mercure ? `${system.httpUrl}/.well-known/mercure` : system.publishUrl,
      requests: [
        {
          method: 'POST',
          headers,
          body,
          onResponse: (status: number, text: string) => {
            if (status === 200 && stores) ackedIds.push(...idsOf(text));
          },
        },
      ],
      connections: mode === 'batch100' ? 16 : 64,
      pipelining: 1,
      duration: seconds,
    });
    const serverCores = (cpuMs(system.pid) - cpu0) / 1000 / seconds;
    const acked = result['2xx'] * perRequest;
    // Every id an answer named must be a stored row; ids must not repeat across answers.
    const stored = ackedIds.length === 0 ? 0 : Math.min(await storedCount(system, ackedIds), new Set(ackedIds).size);
    return {
      system: system.name,
      mode,
      groupCommit,
      messagesPerSec: acked / seconds,
      p50: result.latency.p50,
      p99: result.latency.p99,
      acked,
      lost: stores ? Math.max(0, acked - stored, acked - ackedIds.length) : NaN,
      failed: result.non2xx + result.errors + result.timeouts,
      serverCores,
    };
  }
}
