/**
 * A Mercure subscriber outlives the instance it was on: a browser's EventSource
 * behind a balancer with no stickiness, its instance SIGKILLed mid-stream, comes
 * back through the balancer to another instance with Last-Event-ID and gets
 * every update once, in order — those published before, during and after the
 * outage, with the publishers' own ids and the hub's alike. And whoever watches
 * the hub's subscriptions hears that the killed subscriber's subscription ended,
 * once, as if it had closed.
 */
import { afterAll, expect, test } from 'bun:test';
import postgres from 'postgres';
import { SignJWT } from 'jose';
import { launchBrowser } from './harness/browser.ts';
import { startCluster } from './harness/cluster.ts';
import { roundRobin } from './harness/round-robin.ts';

const KEY = 'mercure-resume-key-0123456789';
const { instances } = await startCluster(['node', 'bun'], { env: { MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_ANONYMOUS: '1', MESH_SSE_RETRY: '200ms' } });
const door = roundRobin(instances.map((i) => i.url));
const browser = await launchBrowser();
afterAll(async () => {
  await browser.close();
  door.stop();
});

const token = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
async function publish(base: string, data: string, id?: string): Promise<string> {
  const form = new URLSearchParams({ topic: 'https://example.com/feed', data, ...(id ? { id } : {}) });
  const response = await fetch(`${base}/.well-known/mercure`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  expect(response.status).toBe(200);
  return response.text();
}

test('SIGKILL of the instance holding the stream: the EventSource comes back elsewhere and misses nothing, twice nothing', async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${door.url}/`);
  await page.evaluate(async () => {
    const w = window as any;
    w.got = [];
    const source = (w.source = new EventSource('/.well-known/mercure?topic=https://example.com/feed'));
    source.onmessage = (e: MessageEvent) => w.got.push([e.lastEventId, e.data]);
    await new Promise((resolve) => (source.onopen = resolve));
  });
  const holder = door.log.filter((r) => r.path === '/.well-known/mercure').at(-1)!.upstream;
  const [victim, survivor] = holder === 0 ? [instances[0]!, instances[1]!] : [instances[1]!, instances[0]!];
  const sent: [string, string][] = [];
  for (let i = 0; i < 6; i++) sent.push([await publish(instances[i % 2]!.url, `before ${i}`, i % 2 === 0 ? `custom-${i}` : undefined), `before ${i}`]);
  await page.waitForFunction((n) => (window as any).got.length >= n, sent.length, { timeout: 10_000 });

  await victim.stop('SIGKILL');
  for (let i = 0; i < 6; i++) sent.push([await publish(survivor.url, `during ${i}`, i % 2 === 0 ? `custom-during-${i}` : undefined), `during ${i}`]);
  await page.waitForFunction((n) => (window as any).got.length >= n, sent.length, { timeout: 20_000 });
  sent.push([await publish(survivor.url, 'after'), 'after']);
  await page.waitForFunction((n) => (window as any).got.length >= n, sent.length, { timeout: 10_000 });
  expect(await page.evaluate(() => (window as any).got)).toEqual(sent);
  // It did come back: its second stream was opened on the survivor, with the last id it had.
  expect(door.log.filter((r) => r.path === '/.well-known/mercure').length).toBeGreaterThanOrEqual(2);
}, 60_000);

// SIGKILL: the instance that reaps the victim publishes the end. SIGTERM: the draining instance closes the
// stream and announces it itself; its retirement must not announce it again.
test.each(['SIGKILL', 'SIGTERM'] as const)('a subscriber whose instance goes (%s) is announced inactive (active: false), once', async (signal) => {
  const cluster = await startCluster(['bun', 'node'], { env: { MERCURE_PUBLISHER_JWT_KEY: KEY, MERCURE_ANONYMOUS: '1', MESH_INSTANCE_TTL: '3s', MESH_DRAIN_TIME: '1s' } });
  const [victim, survivor] = cluster.instances as [(typeof cluster.instances)[0], (typeof cluster.instances)[0]];
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const watching = new AbortController();
  const subscribing = new AbortController();
  try {
    const template = '/.well-known/mercure/subscriptions/{topic}/{subscriber}';
    const watcherToken = await new SignJWT({ mercure: { subscribe: [template] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
    const watch = await fetch(`${survivor.url}/.well-known/mercure?topic=${encodeURIComponent(template)}`, { headers: { authorization: `Bearer ${watcherToken}` }, signal: watching.signal });
    const reader = watch.body!.getReader();
    let text = '';
    const topic = `https://example.com/killed/${Date.now()}`;
    const mine = () =>
      text
        .split('\n\n')
        .filter((e) => e.includes('event: mercure'))
        .map((e) => JSON.parse(/data: (.*)/.exec(e)![1]!) as Record<string, unknown>)
        .filter((e) => e.topic === topic);
    const until = async (count: number) => {
      const deadline = Date.now() + 20_000;
      while (mine().length < count) {
        if (Date.now() > deadline) throw new Error(`the watcher has ${mine().length} of ${count} events; so far: ${text}`);
        const chunk = await reader.read();
        if (chunk.done) throw new Error(`the watcher's stream ended; so far: ${text}`);
        text += new TextDecoder().decode(chunk.value);
      }
    };

    expect((await fetch(`${victim.url}/.well-known/mercure?topic=${encodeURIComponent(topic)}`, { signal: subscribing.signal })).status).toBe(200);
    await until(1);
    const [started] = mine();
    expect(started).toMatchObject({ type: 'Subscription', topic, active: true });

    // stop() resolves once the victim has exited: after a drain, its retirement is committed.
    await victim.stop(signal);
    await until(2);
    expect(mine()[1]).toEqual({ ...started, active: false });
    // Published once: the log holds one end for this subscriber.
    const ended = '"active\\":false'; // as it stands in the stored update, the document being a JSON string in it
    const [ends] = await sql`select count(*)::int as n from mesh_message where channel = '$mercure' and strpos(data, ${started!.subscriber as string}) > 0 and strpos(data, ${ended}) > 0`;
    expect(ends!.n).toBe(1);
  } finally {
    watching.abort();
    subscribing.abort();
    await sql.end();
    await cluster.stop();
  }
}, 60_000);
