/**
 * A backend's webhook endpoint for tests: records every POST (its events, its
 * signature, whether the signature holds by the receiver's own HMAC), and
 * answers as told — 200, a failing status for the next N posts, or not at all.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createWaiter } from './waiter.ts';

export interface ReceivedEvent {
  id: string;
  type: string;
  at: number;
  [field: string]: unknown;
}

export interface WebhookReceiver {
  url: string;
  /** Every POST so far: its events and whether its signature was good and fresh. */
  posts: { events: ReceivedEvent[]; signed: boolean; status: number }[];
  /** Events of the POSTs answered 2xx, once each by id, in arrival order. */
  delivered(): ReceivedEvent[];
  /** Answers the next `n` POSTs with `status`. */
  failNext(n: number, status?: number): void;
  /** Holds every POST unanswered from now on, until release(). */
  hang(): void;
  /** Answers the held POSTs (200) and stops holding. */
  release(): void;
  /** POSTs being held right now. */
  held(): number;
  /** Waits until `done()` holds, re-checked on every POST. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a receiver that checks signatures made with `secret`. */
export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const waiter = createWaiter();
  const posts: WebhookReceiver['posts'] = [];
  let failing = 0;
  let failStatus = 500;
  let hanging = false;
  const holding: { res: ServerResponse; post: WebhookReceiver['posts'][number] }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['pgmesh-signature'])) ?? [];
      const signed = t !== undefined && createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex') === v1 && Math.abs(Date.now() / 1000 - Number(t)) < 300;
      const events = (JSON.parse(raw) as { events: ReceivedEvent[] }).events;
      if (hanging) {
        const post = { events, signed, status: 0 };
        posts.push(post);
        holding.push({ res, post });
      } else if (failing > 0) {
        failing--;
        posts.push({ events, signed, status: failStatus });
        res.writeHead(failStatus).end('not now');
      } else {
        posts.push({ events, signed, status: 200 });
        res.writeHead(200).end('ok');
      }
      waiter.wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`,
    posts,
    delivered() {
      const seen = new Set<string>();
      const out: ReceivedEvent[] = [];
      for (const post of posts) {
        if (post.status !== 200) continue;
        for (const event of post.events) if (!seen.has(event.id)) (seen.add(event.id), out.push(event));
      }
      return out;
    },
    failNext(n, status = 500) {
      failing = n;
      failStatus = status;
    },
    hang: () => void (hanging = true),
    release() {
      hanging = false;
      // Answered late, but answered: if pgmesh still waits, the events are delivered; if it gave up, they come again.
      for (const { res, post } of holding.splice(0)) {
        if (res.destroyed) continue;
        post.status = 200;
        res.writeHead(200).end('late');
      }
    },
    held: () => holding.length,
    until: (done, timeoutMs = 15_000) => waiter.until(done, timeoutMs, () => `webhook condition not met within ${timeoutMs} ms; ${posts.length} posts: ${JSON.stringify(posts.slice(-3))}`),
    close: () =>
      new Promise<void>((resolve) => {
        for (const { res } of holding.splice(0)) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
