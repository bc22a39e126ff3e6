/**
 * Clients that come back (issue 25, item 4): a load-generator process (Bun) of WebSockets,
 * each a user of its own in one of `rooms` rooms. When its connection drops, a client
 * reconnects as the bundled browser client does — a delay doubling from 0.25 s to 15 s, of
 * which it waits a random half to all — to whichever instance the balancer gives next (a round robin with no stickiness; an
 * instance that refused or answered 503 costs that client an attempt and is skipped for the
 * next 2 s, as a balancer's health check would take it out), and resumes its room from the
 * last id it saw (`since`).
 *
 * Every message carries its room's sequence number (payload(seq, room)): a gap, a duplicate
 * or a reordering is counted. Reports JSON lines on stdout: {"ready":n} once every client is
 * in, then {"report":...} every 200 ms.
 *
 * Config comes as JSON in the RECONNECTING env variable (see ReconnectingConfig).
 */
import { SignJWT } from 'jose';

export interface ReconnectingConfig {
  /** ws:// URLs of /v1/ws on every instance, without a query. */
  urls: string[];
  /** The cluster-wide index of this process's first client: users are `<prefix><index>`, rooms `<room prefix><index % rooms>`. */
  first: number;
  count: number;
  rooms: number;
  roomPrefix: string;
  secret: string;
  prefix: string;
  /** Clients connecting at once during the first fill (reconnections are paced by their backoff alone). */
  concurrency: number;
}

export interface ReconnectingReport {
  /** Clients subscribed right now. */
  connected: number;
  /** Connections that dropped after being subscribed. */
  drops: number;
  /** Clients back (resubscribed) after a drop. */
  back: number;
  /** Connection attempts that failed (refused, 503, closed or timed out before the subscribe reply). */
  attemptsFailed: number;
  /** Deliveries out of sequence in their room: gaps, duplicates or reordering. */
  errors: number;
  /** `expired` notices: a resume asked for history retention had already deleted. */
  expired: number;
  /** Per room: the fewest of its messages a client of this process has (null: none of its clients are here). */
  roomMin: (number | null)[];
  /** Drop-to-resubscribed times of the clients back since the last report, ms. */
  samples: number[];
  cpuMs: number;
}

const config = JSON.parse(process.env.RECONNECTING!) as ReconnectingConfig;
const key = new TextEncoder().encode(config.secret);

// The bundled client's policy (public/mesh.js): equal jitter over a delay doubling from 0.25 s to 15 s.
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 15_000;
/** An attempt with no subscribe reply by then is given up and retried. */
const ATTEMPT_TIMEOUT_MS = 10_000;

interface Client {
  index: number;
  room: string;
  /** `"<room>","id":`: what follows the head of an envelope of its room. */
  roomField: string;
  roomIndex: number;
  token: string;
  /** The highest message id seen (or the first subscribe's position): where a resume starts. */
  lastId: number;
  /** The last sequence number seen in its room. */
  lastSeq: number;
  subscribed: boolean;
  /** When the subscribed connection dropped, or null. */
  droppedAt: number | null;
  attempt: number;
}

let balancer = 0;
/** When each instance may be tried again: one that refused an attempt is skipped meanwhile, as a balancer's health check would take it out. */
const downUntil = new Array<number>(config.urls.length).fill(0);
const HEALTH_CHECK_MS = 2_000;

/** The next instance in turn that is not known to be down (any, if all are). */
function nextInstance(): number {
  for (let tries = 0; tries < config.urls.length; tries++) {
    const k = balancer++ % config.urls.length;
    if (downUntil[k]! <= performance.now()) return k;
  }
  return balancer++ % config.urls.length;
}

let connected = 0;
let drops = 0;
let back = 0;
let attemptsFailed = 0;
let errors = 0;
let expired = 0;
let samples: number[] = [];

const MESSAGE_HEAD = '{"event":"message","channel":';
const DATA_HEAD = '"data":"';

function onFrame(client: Client, text: string, ready: () => void): void {
  if (text.startsWith(MESSAGE_HEAD)) {
    // {"event":"message","channel":"<room>","id":<id>,"data":"<seq>|...": read in place (a JSON.parse per delivery would make these processes, not pgmesh, the measure).
    if (!text.startsWith(client.roomField, MESSAGE_HEAD.length)) return;
    const idAt = MESSAGE_HEAD.length + client.roomField.length;
    const id = Number(text.slice(idAt, text.indexOf(',', idAt)));
    const dataAt = text.indexOf(DATA_HEAD, idAt) + DATA_HEAD.length;
    const seq = Number(text.slice(dataAt, text.indexOf('|', dataAt)));
    if (id <= client.lastId || seq !== client.lastSeq + 1) errors++;
    client.lastId = Math.max(client.lastId, id);
    client.lastSeq = seq;
    return;
  }
  const frame = JSON.parse(text) as { op?: string; event?: string; success?: boolean; position?: number };
  if (frame.event === 'expired') expired++;
  if (frame.op === 'subscribe' && frame.success === true) {
    // The first subscription starts from the server's position; a resume keeps the last id seen (its replay follows).
    if (client.droppedAt === null) client.lastId = Math.max(client.lastId, frame.position ?? 0);
    ready();
  }
}

/** One attempt: resolves true once subscribed (the socket then stays), false if it failed. */
function attempt(client: Client, onDrop: () => void): Promise<boolean> {
  const instance = nextInstance();
  return new Promise((resolve) => {
    const ws = new WebSocket(`${config.urls[instance]}?format=envelope`);
    let opened = false;
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok) {
        attemptsFailed++;
        // Refused, or answered 503 (draining, full): the balancer takes that instance out for a while.
        if (!opened) downUntil[instance] = performance.now() + HEALTH_CHECK_MS;
        ws.close();
      }
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false), ATTEMPT_TIMEOUT_MS);
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ op: 'auth', token: client.token }));
      // A first subscription starts live; a comeback resumes after the last id seen.
      const since = client.droppedAt !== null ? { since: client.lastId } : {};
      ws.send(JSON.stringify({ op: 'subscribe', channels: ['@user', client.room], ...since }));
    };
    ws.onmessage = (event) =>
      onFrame(client, event.data as string, () => {
        client.subscribed = true;
        connected++;
        settle(true);
      });
    ws.onerror = () => settle(false);
    ws.onclose = () => {
      if (!settled) return settle(false);
      if (!client.subscribed) return;
      client.subscribed = false;
      connected--;
      drops++;
      client.droppedAt = performance.now();
      onDrop();
    };
  });
}

/** Connects `client`, retrying with backoff until it is subscribed; after each drop, does so again (the first try after a drop waits too, as the bundled client's does). */
async function keep(client: Client, dropped = false): Promise<void> {
  if (dropped) await backoff(client);
  for (;;) {
    const ok = await attempt(client, () => void keep(client, true));
    if (ok) {
      client.attempt = 0;
      if (client.droppedAt !== null) {
        samples.push(performance.now() - client.droppedAt);
        client.droppedAt = null;
        back++;
      }
      return;
    }
    await backoff(client);
  }
}

function backoff(client: Client): Promise<void> {
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** client.attempt++);
  return new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * (delay / 2))); // the backoff itself
}

async function main(): Promise<void> {
  const clients: Client[] = await Promise.all(
    Array.from({ length: config.count }, async (_, i) => {
      const index = config.first + i;
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`${config.prefix}${index}`).setExpirationTime('1d').sign(key);
      const room = `${config.roomPrefix}${index % config.rooms}`;
      return { index, room, roomField: `${JSON.stringify(room)},"id":`, roomIndex: index % config.rooms, token, lastId: 0, lastSeq: -1, subscribed: false, droppedAt: null, attempt: 0 };
    }),
  );
  // The first fill starts at the client's own share of the instances, so each holds the same number.
  balancer = config.first;
  let next = 0;
  const lane = async () => {
    while (next < clients.length) await keep(clients[next++]!);
  };
  await Promise.all(Array.from({ length: config.concurrency }, lane));
  process.stdout.write(`${JSON.stringify({ ready: connected })}\n`);
  setInterval(() => {
    // Infinity is written as null: a room none of this process's clients is in.
    const roomMin = new Array<number>(config.rooms).fill(Infinity);
    for (const c of clients) {
      const got = c.lastSeq + 1;
      if (got < roomMin[c.roomIndex]!) roomMin[c.roomIndex] = got;
    }
    const cpu = process.cpuUsage();
    const report: ReconnectingReport = { connected, drops, back, attemptsFailed, errors, expired, roomMin, samples, cpuMs: (cpu.user + cpu.system) / 1000 };
    samples = [];
    process.stdout.write(`${JSON.stringify({ report })}\n`);
  }, 200);
}

main().catch((err) => {
  process.stderr.write(`reconnecting: ${(err as Error).message}\n`);
  process.exit(1);
});
