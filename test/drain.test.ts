/**
 * A rolling deploy of a busy instance: SIGTERM to one of three, 1,000 clients on it, a
 * publisher sending throughout. The instance reports not-ready, closes its clients with
 * 1012 spread over MESH_DRAIN_TIME, and exits; every client reconnects to another
 * instance and ends with every acknowledged message exactly once, in order.
 */
import { describe, expect, test } from 'bun:test';
import { startCluster } from './harness/cluster.ts';
import { token } from './harness/tokens.ts';
import { createWaiter, pollUntil } from './harness/waiter.ts';

const CLIENTS = 1000;
const DRAIN_MS = 3000;
const CHANNEL = 'room_drain';

const { instances } = await startCluster(['node', 'bun', 'bun'], { env: { MESH_DRAIN_TIME: `${DRAIN_MS}ms` } });
const [A, B, C] = instances as [(typeof instances)[0], (typeof instances)[0], (typeof instances)[0]];
const waiter = createWaiter();

/** A client that follows the channel across instances, as the bundled browser client does. */
class Roamer {
  ids: number[] = [];
  /** Where it resumes from: the subscribe reply's position, then the last id seen. */
  position = 0;
  closedAt: number | null = null;
  closeCode: number | null = null;
  moved = false;

  constructor(readonly jwt: string) {}

  /** Connects to `url`, authenticates, subscribes (from `position` when resuming); resolves once subscribed. */
  join(url: string, resume: boolean, onClose?: (code: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?format=envelope&token=${this.jwt}`);
      ws.onerror = () => reject(new Error(`connection to ${url} failed`));
      ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', channels: [CHANNEL], ...(resume ? { since: this.position } : {}) }));
      ws.onmessage = (event) => {
        const frame = JSON.parse(String(event.data)) as { op?: string; success?: boolean; position?: number; channel?: string; id?: number };
        if (frame.op === 'subscribe') {
          if (frame.success !== true) return reject(new Error(`subscribe failed: ${String(event.data)}`));
          this.position = Math.max(this.position, frame.position ?? 0);
          return resolve();
        }
        if (frame.channel === CHANNEL && typeof frame.id === 'number') {
          this.ids.push(frame.id);
          this.position = Math.max(this.position, frame.id);
          waiter.wake();
        }
      };
      ws.onclose = (event) => onClose?.(event.code);
    });
  }
}

describe('draining an instance (SIGTERM) under load', () => {
  test('1,000 clients move to the other instances with every acknowledged message once and in order, the closes spread over the drain window', async () => {
    const roamers = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => new Roamer(await token(`drain-${i}`))));
    const others = [B, C];
    let moved = 0;
    for (let i = 0; i < CLIENTS; i += 100) {
      await Promise.all(
        roamers.slice(i, i + 100).map((r, k) =>
          r.join(A.url, false, (code) => {
            r.closedAt = performance.now();
            r.closeCode = code;
            // Reconnect elsewhere at once, resuming from the last id seen.
            void r.join(others[(i + k) % 2]!.url, true).then(() => {
              r.moved = true;
              moved++;
              waiter.wake();
            });
          }),
        ),
      );
    }
    expect((await (await fetch(`${A.url}/readyz`)).json()) as unknown).toEqual({ ready: true });

    // One publisher, through B, acknowledged message by message, for the whole drain and a little after.
    const acked: number[] = [];
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const res = await B.publish({ c: CHANNEL, d: `m${acked.length}` });
        expect(res.status).toBe(200);
        acked.push(((await res.json()) as { id: number }).id);
        // The publisher's pace, not a wait for a condition: one the Node instance delivers to its 1,000 clients
        // with time to spare. Every 5 ms it spent the whole test sending and its timers ran 400 ms late.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await waiter.until(() => acked.length >= 20, 10_000, () => 'the publisher started');

    const signalledAt = performance.now();
    const exited = A.stop('SIGTERM');
    // While it drains, A is not ready (but healthy) and takes no new connection.
    await pollUntil(async () => (await fetch(`${A.url}/readyz`)).status === 503, 5000, 'A reports not ready once signalled');
    expect(await (await fetch(`${A.url}/readyz`)).json()).toMatchObject({ ready: false, reasons: ['draining'], code: 'ERR_DRAINING' });
    expect((await fetch(`${A.url}/healthz`)).status).toBe(200);
    const refused = await fetch(`${A.url}/v1/sse?token=${roamers[0]!.jwt}`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'ERR_DRAINING' });

    expect(await exited).toBe(0);
    const exitMs = performance.now() - signalledAt;
    await waiter.until(() => moved === CLIENTS, 20_000, () => `${moved} of ${CLIENTS} clients moved`);
    await waiter.until(() => acked.length >= 20 + 100, 20_000, () => 'the publisher went on');
    publishing = false;
    await publisher;

    const last = acked.at(-1)!;
    await waiter.until(() => roamers.every((r) => r.position >= last), 30_000, () => `${roamers.filter((r) => r.position < last).length} clients short of ${last}`);
    for (const r of roamers) {
      expect(r.closeCode).toBe(1012);
      // Exactly the acknowledged messages, each once, in order (nothing else is published there).
      expect(r.ids).toEqual(acked);
    }

    // The closes are spread: over most of the window, and no 100 ms holds more than a fifth of them
    // (an even spread puts 1/30 in each; all at once would put every one in a single window). The
    // times are taken in this process, which is also reconnecting the clients, so they bunch a little.
    const times = roamers.map((r) => r.closedAt! - signalledAt).sort((x, y) => x - y);
    const span = times.at(-1)! - times[0]!;
    let busiest = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i]! - times[j]! > 100) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    console.log(`drain: closes over ${span.toFixed(0)} ms, busiest 100 ms ${busiest} of ${CLIENTS}, exit after ${exitMs.toFixed(0)} ms`);
    expect(span).toBeGreaterThan(DRAIN_MS * 0.6);
    // And within the window: the drain keeps to MESH_DRAIN_TIME however late the instance's timers run.
    expect(times.at(-1)!).toBeLessThan(DRAIN_MS + 1000);
    expect(busiest).toBeLessThanOrEqual(CLIENTS / 5);
    expect(exitMs).toBeLessThan(DRAIN_MS + 5000);
  }, 120_000);
});
