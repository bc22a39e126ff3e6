/**
 * Pusher's own clients where apps run them: pusher-js's browser build in two
 * headless Chromium pages, authorised by the app's /broadcasting/auth (served
 * here with the official server library, as Laravel serves it), whispering to
 * each other with client events; and a plain PHP script that signs the Pusher
 * way with curl, as Laravel's broadcaster does, run by the PHP CLI.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import PusherServer from 'pusher';
import { launchBrowser } from './harness/browser.ts';
import { startTestMesh } from './harness/mesh.ts';
import { hasPhp, runPhp } from './harness/php.ts';
import { ROOT } from './harness/process.ts';

const APP = { id: '2001', key: 'browser-key', secret: 'browser-secret-0123456789' };
const mesh = await startTestMesh({ PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` });
const sdk = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(mesh.port), useTLS: false });

// The application: its page (pusher-js from its own origin) and its channel auth endpoint.
const PAGE = `<!doctype html><script src="/pusher.min.js"></script><script>
  const q = new URLSearchParams(location.search);
  window.got = [];
  const pusher = new Pusher(q.get('key'), {
    cluster: 'local', wsHost: '127.0.0.1', wsPort: Number(q.get('port')), forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: '/broadcasting/auth', transport: 'ajax' },
  });
  const channel = pusher.subscribe('private-room');
  channel.bind('pusher:subscription_succeeded', () => (window.subscribed = true));
  channel.bind_global((event, data) => { if (!event.startsWith('pusher')) window.got.push([event, data]); });
  window.whisper = (data) => channel.trigger('client-whisper', data);
</script>`;
const app = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === '/pusher.min.js') return new Response(readFileSync(join(ROOT, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js')), { headers: { 'content-type': 'text/javascript' } });
    if (path === '/broadcasting/auth') {
      const form = new URLSearchParams(await req.text());
      return Response.json(sdk.authorizeChannel(form.get('socket_id')!, form.get('channel_name')!));
    }
    return new Response(PAGE, { headers: { 'content-type': 'text/html' } });
  },
});
const browser = await launchBrowser();
afterAll(async () => {
  await browser.close();
  app.stop(true);
});

async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${app.port}/?key=${APP.key}&port=${mesh.port}`);
  await page.waitForFunction(() => (window as any).subscribed === true, null, { timeout: 15_000 });
  return { context, page, got: () => page.evaluate(() => (window as any).got as [string, unknown][]) };
}

describe('Pusher clients in their own homes', () => {
  test('two browsers on a private channel: a whisper reaches the other only; a server event reaches both', async () => {
    const one = await openPage();
    const two = await openPage();
    await one.page.evaluate(() => (window as any).whisper({ typing: true }));
    await two.page.waitForFunction(() => (window as any).got.length >= 1, null, { timeout: 10_000 });
    expect(await two.got()).toEqual([['client-whisper', { typing: true }]]);
    await sdk.trigger('private-room', 'announcement', { text: 'to all' });
    for (const p of [one, two]) await p.page.waitForFunction(() => (window as any).got.some((e: [string]) => e[0] === 'announcement'), null, { timeout: 10_000 });
    expect(await one.got()).toEqual([['announcement', { text: 'to all' }]]);
    expect((await two.got()).map((e) => e[0])).toEqual(['client-whisper', 'announcement']);
    await one.context.close();
    await two.context.close();
  }, 60_000);

  test.skipIf(!hasPhp)('a plain PHP script signs the Pusher way and the browser gets its event; a wrong secret is refused', async () => {
    const page = await openPage();
    const env = { PUSHER_HOST: mesh.url, PUSHER_APP_ID: APP.id, PUSHER_APP_KEY: APP.key, PUSHER_APP_SECRET: APP.secret };
    const script = join(ROOT, 'examples', 'php', 'pusher-publish.php');
    const sent = await runPhp(script, ['private-room', 'order.placed', '{"id":42}'], env);
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toBe('sent order.placed to private-room\n');
    await page.page.waitForFunction(() => (window as any).got.length >= 1, null, { timeout: 10_000 });
    expect(await page.got()).toEqual([['order.placed', { id: 42 }]]);
    const refused = await runPhp(script, ['private-room', 'order.placed', '{"id":43}'], { ...env, PUSHER_APP_SECRET: 'not-the-secret-0123456789' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('pusher event refused (401)');
    await page.context.close();
  }, 60_000);
});
