/** The demo page in a real browser: pick a user, join a room, chat, and see what the application publishes. */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { startTestMesh } from './harness/mesh.ts';
import { ARTIFACTS, launchBrowser } from './harness/browser.ts';
import { token } from './harness/tokens.ts';
import { onChannel } from './harness/ws-client.ts';

// No JWT_SECRET: demo mode, where the page mints its own token from /v1/dev/token.
const mesh = await startTestMesh({ JWT_SECRET: '' });
const browser = await launchBrowser();
afterAll(() => browser.close());

describe('demo page', () => {
  test('connect as a user, join a room, chat, and receive an API publish', async () => {
    const page = await browser.newPage();
    await page.goto(mesh.url);
    await page.fill('#uid', 'alice');
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
    expect(await page.textContent('#state')).toBe('open over websocket');

    await page.fill('#room', 'room_101');
    await page.click('#join');
    await page.waitForSelector('#log li:has-text("joined room_101")');

    // Another user in the same room, over a plain WebSocket, sees the page's message and answers.
    const devToken = (await (await fetch(`${mesh.url}/v1/dev/token?uid=bob`)).json()) as { token: string };
    const bob = await mesh.connect();
    expect(await bob.request({ op: 'auth', args: [devToken.token] })).toMatchObject({ success: true });
    await bob.request({ op: 'subscribe', args: ['room_101'] });

    await page.fill('#text', 'hello,world!');
    await page.click('#send');
    expect(await bob.next(onChannel('room_101'))).toMatchObject({ data: 'hello,world!', uid: 'alice' });
    await page.waitForSelector('#log li:has-text("alice:") >> text=hello,world!');

    await bob.request({ op: 'sendtoroom', args: ['room_101', 'hi alice'] });
    await page.waitForSelector('#log li:has-text("bob:") >> text=hi alice');

    // What a PHP app would send with curl.
    const d = JSON.stringify({ event: '@user', data: { msg: 'Hello from my app' } });
    expect((await mesh.publish({ c: 'user:alice', d })).status).toBe(200);
    await page.waitForSelector('#log li:has-text("user:alice") >> text=Hello from my app');

    await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
  }, 30_000);

  test('outside demo mode the page cannot mint tokens and says why', async () => {
    const secured = await startTestMesh();
    const res = await fetch(`${secured.url}/v1/dev/token?uid=alice`);
    expect(res.status).toBe(404);
    const page = await browser.newPage();
    await page.goto(secured.url);
    await page.click('#connect');
    await page.waitForSelector('#log li:has-text("error:")');
    // With a real token pasted in, it connects.
    await page.fill('#token', await token('alice'));
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
  }, 30_000);
});
