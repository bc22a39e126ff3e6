/**
 * Postgres goes away under a running cluster and comes back: publishes fail fast
 * with 503 meanwhile, every publish answered 200 is delivered everywhere, and
 * the instances recover by themselves.
 */
import { describe, expect, test } from 'bun:test';
import { collect, startCluster } from './harness/cluster.ts';
import { postgresServer } from './harness/postgres.ts';
import { logLines } from './harness/process.ts';
import { pollUntil } from './harness/waiter.ts';

const server = await postgresServer();
const embedded = server.stop !== undefined;

describe('Postgres restart during a publish stream', () => {
  test.if(embedded)('every acknowledged publish is delivered on every instance; the rest were refused', async () => {
    const { instances, stop } = await startCluster(['bun', 'node']);
    try {
      const [A, B] = instances as [(typeof instances)[0], (typeof instances)[0]];
      const subs = await Promise.all([A.login('rs-1'), B.login('rs-2')]);
      for (const s of subs) await s.request({ op: 'subscribe', args: ['room_restart'] });

      const acked: string[] = [];
      const refused: { status: number; code: string }[] = [];
      let running = true;
      const publisher = (async () => {
        for (let i = 0; running; i++) {
          const res = await A.publish({ c: 'room_restart', d: `rs-${i}` });
          if (res.status === 200) acked.push(`rs-${i}`);
          else refused.push({ status: res.status, code: ((await res.json()) as { code: string }).code });
        }
      })();
      const ackedAtLeast = async (n: number) => {
        await subs[0]!.until(() => acked.length >= n, 30_000);
      };

      await ackedAtLeast(100);
      const logBefore = A.stderr().length;
      await server.stop!();
      // While the database is down: publishes are refused with 503, health says so.
      const down = await B.publish({ c: 'room_restart', d: 'while down' });
      expect(down.status).toBe(503);
      expect(await down.json()).toMatchObject({ success: false, code: 'ERR_UNAVAILABLE' });
      const health = await fetch(`${A.url}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ ok: false, code: 'ERR_UNAVAILABLE' });

      // Down for a few seconds, with every background loop failing each second: the log says so once.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await server.start!();
      const before = acked.length;
      await ackedAtLeast(before + 100);
      await pollUntil(async () => A.stderr().slice(logBefore).includes('database back after'), 15_000, 'A logs the recovery');
      const outageLog = logLines(A.stderr().slice(logBefore)).filter((line) => line.level !== 'info');
      expect(outageLog.filter((line) => line.msg === 'database failing')).toHaveLength(1);
      expect(outageLog.filter((line) => line.msg.startsWith('database back after'))).toHaveLength(1);
      expect(outageLog.length).toBeLessThanOrEqual(4);
      running = false;
      await publisher;

      expect(refused.length).toBeGreaterThan(0);
      expect(refused.every((r) => r.status === 503 && r.code === 'ERR_UNAVAILABLE')).toBe(true);
      for (const sub of subs) {
        const got = await collect(sub, acked.length, (f) => typeof f === 'string' && acked.includes(f), 60_000);
        expect(new Set(got).size).toBe(got.length);
        expect([...got].sort()).toEqual([...acked].sort());
        // Nothing arrives twice, acknowledged or not.
        const all = sub.texts.filter((t) => t.startsWith('rs-'));
        expect(new Set(all).size).toBe(all.length);
      }
      // Recovered without a restart: a new publish on B reaches A's subscriber live.
      expect((await B.publish({ c: 'room_restart', d: 'after recovery' })).status).toBe(200);
      expect(await subs[0]!.next((f) => f === 'after recovery', 15_000)).toBe('after recovery');
      expect((await fetch(`${A.url}/healthz`)).status).toBe(200);
    } finally {
      await stop();
    }
  }, 120_000);
});
