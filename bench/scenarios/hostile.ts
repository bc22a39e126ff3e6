/**
 * The attack on a public instance: good publishers (single POSTs at a fixed
 * rate, as php-fpm workers send them) measured alone, then again while a
 * hostile client sends poison at full speed — POSTs whose strings Postgres
 * cannot hold and bodies nested thousands deep, and WebSocket frames of both
 * kinds from logged-in sockets. Target: every good publish succeeds, the
 * poison gets 4xx only, and the good publishers' p99 stays within 2x of the
 * quiet run.
 */
import autocannon from 'autocannon';
import WebSocket from 'ws';
import type { RunningSystem } from '../systems.ts';
import { token } from '../systems.ts';
import { payload } from '../load.ts';

export interface HostileResult {
  system: string;
  attack: 'quiet' | 'poison';
  /** Good publishes answered per second, at the fixed rate asked for. */
  goodPerSec: number;
  p50: number;
  p99: number;
  /** Good publishes that did not get a 200 (must be 0). */
  goodFailed: number;
  /** Poison requests sent, and those answered 5xx or not at all (must be 0). */
  poisonSent: number;
  poison5xx: number;
  /** Poison frames written to the sockets. */
  poisonFrames: number;
}

const GOOD_RATE = 2000;
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const POISON_BODIES = [
  '{"c":"room\\u0000","d":"x"}',
  '{"c":"room","d":"nul \\u0000 in d"}',
  '{"c":"room","d":"half \\ud800 a pair"}',
  `{"c":"room","d":${deep(4000)}}`,
  '{"c":"room","d":"x","exclude":["a.b\\u0000"]}',
];
const POISON_FRAMES = [`{"op":"ping","rid":${deep(4000)}}`, '{"op":"sendtoroom","args":["room","\\u0000"]}', '{"op":"subscribe","channel":"\\ud800"}'];

/** Floods `sockets` logged-in WebSockets with poison frames until stopped; resolves with the frames written. */
async function socketFlood(system: RunningSystem, sockets: number): Promise<{ stop: () => Promise<number> }> {
  const jwt = await token();
  let frames = 0;
  let running = true;
  const opened = await Promise.all(
    Array.from({ length: sockets }, async () => {
      const ws = new WebSocket((await system.wsUrl('room')).replace(/\?.*$/, ''));
      await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
      ws.on('message', () => {}); // replies are read and dropped
      ws.send(JSON.stringify({ op: 'auth', token: jwt }));
      return ws;
    }),
  );
  const pump = (ws: WebSocket) => {
    if (!running || ws.readyState !== WebSocket.OPEN) return;
    // Full speed, but never more than the socket has taken: the flood measures pgmesh, not our memory.
    while (ws.bufferedAmount < 1 << 20) {
      ws.send(POISON_FRAMES[frames++ % POISON_FRAMES.length]!);
    }
    setImmediate(pump, ws);
  };
  for (const ws of opened) pump(ws);
  return {
    stop: async () => {
      running = false;
      for (const ws of opened) ws.close();
      return frames;
    },
  };
}

/** The good publishers alone, then beside the poison; two rows. */
export async function hostile(system: RunningSystem, seconds: number): Promise<HostileResult[]> {
  const good = () =>
    autocannon({
      url: system.publishUrl,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'good', d: payload(0) }) }],
      connections: 16,
      overallRate: GOOD_RATE,
      duration: seconds,
    });
  const row = (attack: HostileResult['attack'], r: autocannon.Result, poison?: { sent: number; bad: number; frames: number }): HostileResult => ({
    system: system.name,
    attack,
    goodPerSec: r['2xx'] / seconds,
    p50: r.latency.p50,
    p99: r.latency.p99,
    goodFailed: r.non2xx + r.errors + r.timeouts,
    poisonSent: poison?.sent ?? 0,
    poison5xx: poison?.bad ?? 0,
    poisonFrames: poison?.frames ?? 0,
  });

  const quiet = await good();
  const flood = await socketFlood(system, 4);
  let poison5xx = 0;
  const [underAttack, poison] = await Promise.all([
    good(),
    autocannon({
      url: system.publishUrl,
      requests: POISON_BODIES.map((body) => ({
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        onResponse: (status: number) => {
          if (status >= 500) poison5xx++;
        },
      })),
      connections: 32,
      duration: seconds,
    }),
  ]);
  const frames = await flood.stop();
  return [row('quiet', quiet), row('poison', underAttack, { sent: poison.requests.sent, bad: poison5xx + poison.errors + poison.timeouts, frames })];
}
