/**
 * The hostile client of the under-attack scenario, in a process of its own (so its work does not
 * slow the good publishers' own measuring loop): for ATTACK.seconds it POSTs poison at full speed
 * and floods logged-in WebSockets with poison frames, opening a socket again whenever the server
 * closes one. Prints one JSON line at the end: what it sent, and what came back 5xx or not at all.
 */
import autocannon from 'autocannon';
import WebSocket from 'ws';

export interface AttackConfig {
  publishUrl: string;
  wsUrl: string;
  token: string;
  seconds: number;
  sockets: number;
}

export interface AttackReport {
  sent: number;
  /** Poison POSTs answered 5xx, or not answered (must be 0). */
  bad: number;
  frames: number;
  socketsOpened: number;
}

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const POISON_BODIES = [
  '{"c":"room\\u0000","d":"x"}',
  '{"c":"room","d":"nul \\u0000 in d"}',
  '{"c":"room","d":"half \\ud800 a pair"}',
  `{"c":"room","d":${deep(4000)}}`,
  '{"c":"room","d":"x","exclude":["a.b\\u0000"]}',
];
const POISON_FRAMES = [`{"op":"ping","rid":${deep(4000)}}`, '{"op":"sendtoroom","args":["room","\\u0000"]}', '{"op":"subscribe","channel":"\\ud800"}'];

const config = JSON.parse(process.env.ATTACK!) as AttackConfig;
let frames = 0;
let opened = 0;
let running = true;
const live = new Set<WebSocket>();

const pump = (ws: WebSocket) => {
  if (!running || ws.readyState !== WebSocket.OPEN) return;
  // Full speed, a burst a turn, never more than the socket has taken: its memory is not what is measured.
  for (let burst = 0; burst < 32 && ws.bufferedAmount < 1 << 20; burst++) ws.send(POISON_FRAMES[frames++ % POISON_FRAMES.length]!);
  setImmediate(pump, ws);
};
const attacker = () => {
  if (!running) return;
  const ws = new WebSocket(config.wsUrl);
  opened++;
  live.add(ws);
  ws.on('open', () => {
    ws.send(JSON.stringify({ op: 'auth', token: config.token }));
    pump(ws);
  });
  ws.on('message', () => {});
  ws.on('error', () => {});
  ws.on('close', () => {
    live.delete(ws);
    attacker();
  });
};
for (let i = 0; i < config.sockets; i++) attacker();

let bad = 0;
const posts = await autocannon({
  url: config.publishUrl,
  requests: POISON_BODIES.map((body) => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    onResponse: (status: number) => {
      if (status >= 500) bad++;
    },
  })),
  connections: 32,
  duration: config.seconds,
});
running = false;
for (const ws of live) ws.terminate();
const report: AttackReport = { sent: posts.requests.sent, bad: bad + posts.errors + posts.timeouts, frames, socketsOpened: opened };
console.log(JSON.stringify(report));
process.exit(0);
