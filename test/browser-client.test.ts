/**
 * The bundled client (public/mesh.js) in headless Chromium, over WebSocket and
 * forced to SSE: messages both ways, and a server restart that loses and
 * duplicates nothing. Then the automatic fallback when WebSockets are refused.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ARTIFACTS, launchBrowser } from './harness/browser.ts';
import { startTestMesh } from './harness/mesh.ts';
import { onChannel } from './harness/ws-client.ts';

const browser = await launchBrowser();
afterAll(() => browser.close());

/** How many log lines of the page contain `text`. */
const countInLog = (page: Page, text: string) =>
  page.$$eval('#log li', (items, t) => items.filter((li) => li.textContent!.includes(t)).length, text);

async function openDemo(url: string, uid: string, forceSse: boolean): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#uid', uid);
  if (forceSse) await page.check('#force-sse');
  await page.click('#connect');
  await page.waitForSelector('#state[data-state="open"]', { timeout: 15_000 });
  return page;
}

describe.each([
  ['websocket', false],
  ['sse', true],
] as const)('the browser client over %s', (transport, forceSse) => {
  test('chat both ways, API publishes, and a server restart without loss or duplicates', async () => {
    const dir = mkdtempSync(join(tmpdir(), `pgmesh-browser-${transport}-`));
    const env = { JWT_SECRET: '', MESH_DATA_DIR: dir };
    const first = await startTestMesh(env, { stopAfterAll: false });
    const page = await openDemo(first.url, 'alice', forceSse);
    expect(await page.textContent('#state')).toBe(`open over ${transport}`);

    await page.click('#join');
    await page.waitForSelector('#log li:has-text("joined room_101")');
    const bobToken = ((await (await fetch(`${first.url}/v1/dev/token?uid=bob`)).json()) as { token: string }).token;
    const bob = await first.connect();
    await bob.request({ op: 'auth', token: bobToken });
    await bob.request({ op: 'subscribe', args: ['room_101'] });
    await page.fill('#text', `hello over ${transport}`);
    await page.click('#send');
    expect(await bob.next(onChannel('room_101'))).toMatchObject({ data: `hello over ${transport}`, uid: 'alice' });
    await bob.request({ op: 'sendtoroom', args: ['room_101', 'hi from bob'] });
    await page.waitForSelector('#log li:has-text("hi from bob")');
    await first.publish({ c: 'user:alice', d: 'before restart' });
    await page.waitForSelector('#log li:has-text("before restart")');

    // Restart on the same port and data folder; publish before the page is back.
    await first.stop();
    await page.waitForSelector('#state:not([data-state="open"])');
    const second = await startTestMesh({ ...env, PORT: String(first.port) });
    await second.publish([{ c: 'user:alice', d: 'to alice while reconnecting' }, { c: 'room_101', d: 'to the room while reconnecting' }]);
    await page.waitForSelector('#state[data-state="open"]', { timeout: 20_000 });
    await second.publish({ c: 'user:alice', d: 'after restart' });
    await page.waitForSelector('#log li:has-text("after restart")');

    for (const text of ['before restart', 'to alice while reconnecting', 'to the room while reconnecting', 'after restart', 'hi from bob']) {
      expect(`${text}: ${await countInLog(page, text)}`).toBe(`${text}: 1`);
    }
    await page.screenshot({ path: join(ARTIFACTS, `client-${transport}.png`), fullPage: true });
  }, 60_000);
});

describe('automatic fallback', () => {
  test('with WebSocket upgrades refused, the client falls back to SSE and works', async () => {
    const mesh = await startTestMesh({ JWT_SECRET: '', MESH_DISABLE_WS: 'true' });
    const page = await browser.newPage();
    await page.goto(mesh.url);
    await page.evaluate(() => {
      (window as unknown as { states: string[] }).states = [];
      new MutationObserver(() => (window as unknown as { states: string[] }).states.push(document.getElementById('state')!.dataset.state!)).observe(
        document.getElementById('state')!,
        { attributes: true },
      );
    });
    await page.fill('#uid', 'carol');
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="open"]', { timeout: 15_000 });
    expect(await page.textContent('#state')).toBe('open over sse');
    expect(await page.evaluate(() => (window as unknown as { states: string[] }).states)).toContain('fallback');
    await mesh.publish({ c: 'user:carol', d: 'reached you anyway' });
    await page.waitForSelector('#log li:has-text("reached you anyway")');
    await page.click('#join');
    await page.waitForSelector('#log li:has-text("joined room_101")');
    await page.click('#send');
    await page.waitForSelector('#log li:has-text("carol:") >> text=hello,world!');
    await page.screenshot({ path: join(ARTIFACTS, 'client-fallback.png'), fullPage: true });
  }, 60_000);
});

/** A page of `mesh` running the bundled client as `uid` (a demo token), recording every event it dispatches into window.events. */
async function clientPage(mesh: { url: string }, uid: string, transport: 'websocket' | 'sse', channels: string[] = []): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(mesh.url);
  await page.evaluate(
    async ([uid, transport, channels]) => {
      const w = window as unknown as Record<string, any>;
      const clientModule = '/mesh.js'; // the page's own URL: imported in the browser, not by the test
      const { connect } = await import(clientModule);
      const token = async () => ((await (await fetch(`/v1/dev/token?uid=${uid}`)).json()) as { token: string }).token;
      w.events = [];
      const client = connect({ token, transport, channels });
      for (const event of ['state', 'disconnect', 'members', 'join', 'leave']) {
        client.addEventListener(event, (e: Event) => w.events.push([event, (e as CustomEvent).detail]));
      }
      w.client = client;
      await new Promise<void>((resolve) => client.addEventListener('state', (e: Event) => (e as CustomEvent).detail.state === 'open' && resolve()));
    },
    [uid, transport, channels] as const,
  );
  return page;
}

/** The events the page's client dispatched so far. */
const eventsOf = (page: Page) => page.evaluate(() => (window as unknown as { events: [string, Record<string, unknown>][] }).events);

describe.each(['websocket', 'sse'] as const)('presence in the browser client over %s', (transport) => {
  test("subscribe with presence: the members, then others' joins and leaves as events", async () => {
    const mesh = await startTestMesh({ JWT_SECRET: '' });
    const page = await clientPage(mesh, 'pat', transport);
    await page.evaluate(() => (window as unknown as { client: { subscribe(c: string, o: object): Promise<unknown> } }).client.subscribe('room_presence', { presence: true }));
    const seen = (event: string, uid: string) =>
      page.waitForFunction(([event, uid]) => (window as unknown as { events: [string, { uid?: string }][] }).events.some(([e, d]) => e === event && d.uid === uid), [event, uid], { timeout: 10_000 });
    const quinnToken = ((await (await fetch(`${mesh.url}/v1/dev/token?uid=quinn`)).json()) as { token: string }).token;
    const quinn = await mesh.connect();
    await quinn.request({ op: 'auth', token: quinnToken });
    await quinn.request({ op: 'subscribe', args: ['room_presence'] });
    await seen('join', 'quinn');
    quinn.close();
    await seen('leave', 'quinn');
    // Over SSE the reply (the POST's answer) and the events (the stream) travel apart: no order between them.
    // The list counts the subscriber itself: its own join is folded into it, not sent after it.
    expect(await eventsOf(page)).toContainEqual(['members', { channel: 'room_presence', members: ['pat'] }]);
  }, 30_000);
});

describe.each(['websocket', 'sse'] as const)('kicked by the backend, over %s', (transport) => {
  test('a 4003 close reaches the page as a disconnect, and the client stays closed instead of reconnecting', async () => {
    const mesh = await startTestMesh({ JWT_SECRET: '' });
    const page = await clientPage(mesh, 'kicked', transport, ['@user']);
    const res = await fetch(`${mesh.url}/v1/mesh/users/kicked/connections?reason=banned`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    await page.waitForFunction(() => (window as unknown as { client: { state: string } }).client.state === 'closed', null, { timeout: 10_000 });
    const events = await eventsOf(page);
    expect(events.filter(([e]) => e === 'disconnect')).toEqual([['disconnect', { code: 4003, reason: 'banned' }]]);
    // Closed for good: after 'open' only 'closed' (a dropped connection would go 'connecting' and open again).
    expect(events.filter(([e]) => e === 'state').map(([, d]) => d.state)).toEqual(['open', 'closed']);
  }, 30_000);
});
