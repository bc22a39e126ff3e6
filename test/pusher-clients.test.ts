/**
 * Pusher's own clients where apps run them: pusher-js's browser build in two
 * headless Chromium pages, authorised by the app's /broadcasting/auth (served
 * here with the official server library, as Laravel serves it), whispering to
 * each other with client events; Laravel Echo on top of it, as a Laravel page
 * sets it up (private and presence channels, whispers, toOthers()); and a plain
 * PHP script that signs the Pusher way with curl, as Laravel's broadcaster
 * does, run by the PHP CLI.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import PusherServer from 'pusher';
import { launchBrowser } from './harness/browser.ts';
import { freshDatabase } from './harness/postgres.ts';
import { startLatencyProxy } from './harness/tcp-proxy.ts';
import { startTestMesh } from './harness/mesh.ts';
import { hasPhp, runPhp } from './harness/php.ts';
import { ROOT } from './harness/process.ts';

const APP = { id: '2001', key: 'browser-key', secret: 'browser-secret-0123456789' };
const mesh = await startTestMesh({ PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}` });
// The same app on Postgres 20 ms away: a presence write takes long enough for a page's next subscribe to join it.
const database = new URL(await freshDatabase());
const distance = await startLatencyProxy(Number(database.port), 20);
database.port = String(distance.port);
const farMesh = await startTestMesh({ PUSHER_APPS: `${APP.id}:${APP.key}:${APP.secret}`, DATABASE_URL: database.toString() }, { stopAfterAll: false });
const farSdk = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(farMesh.port), useTLS: false });
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
// A Laravel page: Echo on pusher-js, as resources/js/echo.js sets it up; the user is who the app's session says (here: ?user=).
const ECHO_PAGE = `<!doctype html><script src="/pusher.min.js"></script><script src="/echo.iife.js"></script><script>
  const q = new URLSearchParams(location.search);
  const user = q.get('user');
  window.log = [];
  window.Echo = new Echo.default({
    broadcaster: 'pusher', key: q.get('key'), cluster: 'mt1',
    wsHost: '127.0.0.1', wsPort: Number(q.get('port')), forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    authEndpoint: '/broadcasting/auth?user=' + user,
  });
  Echo.private('orders.7').listen('OrderShipped', (e) => log.push(['OrderShipped', e]));
  // Who the page believes is in the room: here(), then joining and leaving.
  window.members = new Set();
  Echo.join('room.1')
    .here((users) => ((window.here = users.map((u) => u.name).sort()), (window.members = new Set(window.here)), log.push(['here', window.here])))
    .joining((u) => (window.members.add(u.name), log.push(['joining', u.name])))
    .leaving((u) => (window.members.delete(u.name), log.push(['leaving', u.name])))
    .listen('.chat.message', (e) => log.push(['chat.message', e]))
    .listenForWhisper('typing', (e) => log.push(['typing', e]));
  window.whisper = () => Echo.join('room.1').whisper('typing', { name: user });
  // A form post to the app, as axios sends it with Echo's X-Socket-ID: the app broadcasts toOthers().
  window.say = (text) => fetch('/chat', { method: 'POST', headers: { 'X-Socket-ID': Echo.socketId() }, body: text });
</script>`;
const asset = (path: string) => new Response(readFileSync(join(ROOT, 'node_modules', path)), { headers: { 'content-type': 'text/javascript' } });
const app = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path === '/pusher.min.js') return asset('pusher-js/dist/web/pusher.min.js');
    if (path === '/echo.iife.js') return asset('laravel-echo/dist/echo.iife.js');
    if (path === '/broadcasting/auth') {
      const form = new URLSearchParams(await req.text());
      const [socketId, channel] = [form.get('socket_id')!, form.get('channel_name')!];
      const user = url.searchParams.get('user');
      // Laravel's presence callback returns the user's info; its private callback, true.
      return Response.json(channel.startsWith('presence-') ? sdk.authorizeChannel(socketId, channel, { user_id: `id-${user}`, user_info: { name: user } }) : sdk.authorizeChannel(socketId, channel));
    }
    if (path === '/chat') {
      // broadcast(new ChatMessage($text))->toOthers()
      await sdk.trigger('presence-room.1', 'chat.message', { text: await req.text() }, { socket_id: req.headers.get('x-socket-id') ?? undefined });
      return new Response(null, { status: 204 });
    }
    if (path === '/echo') return new Response(ECHO_PAGE, { headers: { 'content-type': 'text/html' } });
    return new Response(PAGE, { headers: { 'content-type': 'text/html' } });
  },
});
const browser = await launchBrowser();
afterAll(async () => {
  await browser.close();
  app.stop(true);
  await farMesh.stop();
  await distance.close();
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

  test("Laravel Echo in two browsers: a private channel's event by its class name, a presence channel's here/joining/leaving, whispers, and toOthers()", async () => {
    const open = async (user: string) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${app.port}/echo?key=${APP.key}&port=${mesh.port}&user=${user}`);
      const log = () => page.evaluate(() => (window as any).log as [string, unknown][]);
      const until = (what: string, done: string) => page.waitForFunction(done, null, { timeout: 15_000 }).catch(async (err) => {
        throw new Error(`${user}: ${what}; log ${JSON.stringify(await log())}`, { cause: err });
      });
      return { context, page, log, until };
    };
    const alice = await open('alice');
    await alice.until('here', `(window.here || []).includes('alice')`);
    const bob = await open('bob');
    await bob.until('here with both', `(window.here || []).length === 2`);
    expect(await bob.page.evaluate(() => (window as any).here)).toEqual(['alice', 'bob']);
    await alice.until('bob joining', `log.some((e) => e[0] === 'joining' && e[1] === 'bob')`);

    // Laravel broadcasts App\Events\OrderShipped under its class name; Echo's listen('OrderShipped') adds the namespace.
    await sdk.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order: 7 });
    for (const p of [alice, bob]) await p.until('OrderShipped', `log.some((e) => e[0] === 'OrderShipped')`);
    expect((await alice.log()).find((e) => e[0] === 'OrderShipped')).toEqual(['OrderShipped', { order: 7 }]);

    await alice.page.evaluate(() => (window as any).whisper());
    await bob.until('typing', `log.some((e) => e[0] === 'typing')`);
    expect((await bob.log()).find((e) => e[0] === 'typing')).toEqual(['typing', { name: 'alice' }]);

    // toOthers(): alice's own request; bob gets the message, alice does not (a later one reaches both).
    await alice.page.evaluate(() => (window as any).say('hello'));
    await bob.until('chat', `log.some((e) => e[0] === 'chat.message')`);
    await sdk.trigger('presence-room.1', 'chat.message', { text: 'system' });
    await alice.until('system chat', `log.some((e) => e[0] === 'chat.message')`);
    expect((await alice.log()).filter((e) => e[0] === 'chat.message')).toEqual([['chat.message', { text: 'system' }]]);
    await bob.until('both chats', `log.filter((e) => e[0] === 'chat.message').length === 2`);
    expect((await bob.log()).filter((e) => e[0] === 'chat.message')).toEqual([['chat.message', { text: 'hello' }], ['chat.message', { text: 'system' }]]);
    expect((await alice.log()).some((e) => e[0] === 'typing')).toBe(false);

    await bob.context.close();
    await alice.until('bob leaving', `log.some((e) => e[0] === 'leaving' && e[1] === 'bob')`);
    await alice.context.close();
  }, 60_000);

  // Echo's commonest page subscribes to a private channel and joins a presence channel within a
  // millisecond; both land in one presence write, and the member must go out under its own id.
  test("Laravel Echo's private() then join() on 20 pages at once: every page's member list, here() and the app's user list are exactly the 20 users", async () => {
    const users = Array.from({ length: 20 }, (_, i) => `user${String(i + 1).padStart(2, '0')}`);
    const context = await browser.newContext();
    const pages = await Promise.all(
      users.map(async (user) => {
        const page = await context.newPage();
        await page.goto(`http://127.0.0.1:${app.port}/echo?key=${APP.key}&port=${farMesh.port}&user=${user}`);
        return page;
      }),
    );
    const everyone = JSON.stringify(users);
    for (const [i, page] of pages.entries()) {
      await page.waitForFunction(`JSON.stringify([...window.members].sort()) === '${everyone}'`, null, { timeout: 30_000 }).catch(async (err) => {
        throw new Error(`${users[i]} sees ${await page.evaluate(() => JSON.stringify([...(window as any).members].sort()))}; log ${await page.evaluate(() => JSON.stringify((window as any).log))}`, { cause: err });
      });
    }
    // here() named only real users (no socket's stand-in id), each once.
    for (const page of pages) {
      const here = (await page.evaluate(() => (window as any).here)) as string[];
      expect(new Set(here).size).toBe(here.length);
      for (const name of here) expect(users).toContain(name);
    }
    const listed = (await farSdk.get({ path: '/channels/presence-room.1/users' }).then((r) => r.json())) as { users: { id: string }[] };
    expect(listed.users.map((u) => u.id).sort()).toEqual(users.map((u) => `id-${u}`));
    const channel = (await farSdk.get({ path: '/channels/presence-room.1', params: { info: 'user_count' } }).then((r) => r.json())) as { user_count: number };
    expect(channel.user_count).toBe(20);
    await context.close();
  }, 120_000);

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
