/**
 * A load-generator process holding many WebSocket subscribers (Node + `ws`, which
 * can bind several loopback source addresses). It speaks each system's protocol,
 * checks every connection gets every message once and in order (payloads carry a
 * sequence number, per publisher lane where several publish at once), samples publish-to-deliver latency, and reports as JSON lines
 * on stdout: {"ready":n} once connected, then {"report":...} every 100 ms.
 *
 * Config comes as JSON in the SUBSCRIBERS env variable (see SubscriberConfig).
 */
import { request } from 'node:http';
import { SignJWT } from 'jose';
import WebSocket from 'ws';

export interface SubscriberConfig {
  /** ws:// URL to connect to (path and query included). */
  url: string;
  /** pgmesh-sse: an EventSource-style GET of /v1/sse. */
  protocol: 'pgmesh' | 'socketio' | 'ceiling' | 'pgmesh-sse';
  count: number;
  channel: string;
  /** Loopback source addresses to spread connections over (ephemeral ports run out near 28k per address). */
  localAddresses: string[];
  /** Keep one latency sample per this many deliveries. */
  sampleEvery: number;
  /** Connections opened at once. */
  concurrency: number;
  /**
   * Publishers sending at once, each numbering its own messages (payload(seq, lane)):
   * order is then checked per publisher, as concurrent publishes have no order between them.
   */
  lanes?: number;
  /**
   * Each connection a user of its own (`<prefix><n>`, a token signed with `secret`): it authenticates
   * with an `auth` op and subscribes to its user channel and `channel` (pgmesh only). Without it, every
   * connection is the URL's one user, subscribed to `channel` alone.
   */
  users?: { secret: string; prefix: string };
}

export interface SubscriberReport {
  ready: number;
  /** Fewest messages any connection of this process got so far. */
  min: number;
  total: number;
  /** Deliveries out of sequence: gaps, duplicates or reordering. */
  errors: number;
  /** Latency samples (ms) since the last report. */
  samples: number[];
  cpuMs: number;
  closed: number;
}

const config = JSON.parse(process.env.SUBSCRIBERS!) as SubscriberConfig;
const now = () => performance.timeOrigin + performance.now();

interface Conn {
  received: number;
  /** The last sequence number seen from each publisher lane. */
  lastSeq: Int32Array;
}
const newConn = (): Conn => ({ received: 0, lastSeq: new Int32Array(config.lanes ?? 1).fill(-1) });
const conns: Conn[] = [];
let ready = 0;
let errors = 0;
let closed = 0;
let samples: number[] = [];
let sinceSample = 0;

function onPayload(conn: Conn, payload: string): void {
  const bar = payload.indexOf('|');
  const seq = Number(payload.slice(0, bar));
  const bar2 = payload.indexOf('|', bar + 1);
  const sent = Number(payload.slice(bar + 1, bar2));
  const lane = config.lanes === undefined ? 0 : Number(payload.slice(bar2 + 1, payload.indexOf('|', bar2 + 1)));
  if (seq !== conn.lastSeq[lane]! + 1) errors++;
  conn.lastSeq[lane] = seq;
  conn.received++;
  if (++sinceSample >= config.sampleEvery) {
    sinceSample = 0;
    samples.push(now() - sent);
  }
}

function openSse(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(config.url, { localAddress: config.localAddresses[i % config.localAddresses.length], agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE answered ${res.statusCode}`));
      const conn = newConn();
      let buffer = '';
      res.setEncoding('utf8');
      res.once('data', () => {
        conns.push(conn);
        ready++;
        resolve();
      });
      // Messages are `id: <id>` + one `data:` line (the payloads have no line breaks); other events are skipped.
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!event.startsWith('id: ')) continue;
          const data = event.indexOf('\ndata: ');
          if (data >= 0) onPayload(conn, event.slice(data + 7));
        }
      });
      res.on('close', () => closed++);
    });
    req.on('error', reject);
    req.end();
  });
}

const userKey = config.users === undefined ? undefined : new TextEncoder().encode(config.users.secret);

function userToken(i: number): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`${config.users!.prefix}${i}`).setExpirationTime('1d').sign(userKey!);
}

async function open(i: number): Promise<void> {
  if (config.protocol === 'pgmesh-sse') return openSse(i);
  const token = config.users === undefined ? undefined : await userToken(i);
  return new Promise((resolve, reject) => {
    const conn = newConn();
    const ws = new WebSocket(config.url, { localAddress: config.localAddresses[i % config.localAddresses.length], perMessageDeflate: false });
    let isReady = false;
    const markReady = () => {
      if (isReady) return;
      isReady = true;
      conns.push(conn);
      ready++;
      resolve();
    };
    ws.on('error', reject);
    ws.on('close', () => {
      closed++;
      if (!isReady) reject(new Error('closed before ready'));
    });
    ws.on('open', () => {
      if (config.protocol === 'pgmesh' && token !== undefined) {
        ws.send(JSON.stringify({ op: 'auth', token }));
        ws.send(JSON.stringify({ op: 'subscribe', channels: ['@user', config.channel] }));
      } else if (config.protocol === 'pgmesh') ws.send(JSON.stringify({ op: 'subscribe', channel: config.channel }));
      if (config.protocol === 'ceiling') markReady();
    });
    ws.on('message', (data) => {
      const text = data.toString();
      if (config.protocol === 'pgmesh') {
        if (!isReady) {
          if (text.startsWith('{"op":"subscribe"')) markReady();
          return;
        }
        if (text.charCodeAt(0) !== 123) return onPayload(conn, text); // '{' is a reply or event, never a payload
        return;
      }
      if (config.protocol === 'socketio') {
        if (text.startsWith('42')) return onPayload(conn, (JSON.parse(text.slice(2)) as [string, string])[1]);
        if (text === '2') return ws.send('3'); // engine.io ping
        if (text.startsWith('0')) return ws.send('40'); // engine.io open -> socket.io connect
        if (text.startsWith('40')) return markReady();
        return;
      }
      onPayload(conn, text);
    });
  });
}

async function main(): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < config.count) await open(next++);
  };
  await Promise.all(Array.from({ length: config.concurrency }, lane));
  process.stdout.write(`${JSON.stringify({ ready })}\n`);
  setInterval(() => {
    let min = Infinity;
    let total = 0;
    for (const c of conns) {
      if (c.received < min) min = c.received;
      total += c.received;
    }
    const cpu = process.cpuUsage();
    const report: SubscriberReport = { ready, min: conns.length ? min : 0, total, errors, samples, cpuMs: (cpu.user + cpu.system) / 1000, closed };
    samples = [];
    process.stdout.write(`${JSON.stringify({ report })}\n`);
  }, 100);
}

main().catch((err) => {
  process.stderr.write(`subscribers: ${(err as Error).message}\n`);
  process.exit(1);
});
