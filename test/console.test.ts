/**
 * The operator's console in Chromium against a three-instance cluster (node, bun, deno) on a
 * real Postgres: sign-in, every instance with its region, the traffic chart moving with a
 * publish, a user on B found and kicked from A's console, a failing webhook target and its
 * recovery, an instance SIGKILLed shown gone, 100,000 channels paged through, a read-only
 * key that changes nothing, and CSRF. Screenshots of each panel go to test-artifacts/.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import postgres from 'postgres';
import type { Page } from 'playwright-core';
import { ARTIFACTS, launchBrowser } from './harness/browser.ts';
import { startCluster } from './harness/cluster.ts';
import { startWebhookReceiver } from './harness/webhook-receiver.ts';
import { token } from './harness/tokens.ts';
import { connect } from './harness/ws-client.ts';
import { startProcess } from './harness/process.ts';

const KEY = 'console-admin-key-0123456789';
const READ_KEY = 'console-read-key-0123456789';
const SECRET = 'console-webhook-secret-0123456789';
const TTL_MS = 5000;
const REGIONS = ['fra', 'ams', 'sin'];

const receiver = await startWebhookReceiver(SECRET);
const { databaseUrl, instances } = await startCluster(['node', 'bun', 'deno'], {
  env: {
    MESH_API_KEY: KEY,
    MESH_API_READ_KEY: READ_KEY,
    MESH_WEBHOOK_URL: receiver.url,
    MESH_WEBHOOK_SECRET: SECRET,
    MESH_INSTANCE_TTL: `${TTL_MS}ms`,
    MESH_STATS_INTERVAL: '500ms',
  },
  envOf: (i) => ({ MESH_REGION: REGIONS[i]! }),
});
const [A, B, C] = instances as [(typeof instances)[0], (typeof instances)[0], (typeof instances)[0]];
const browser = await launchBrowser();
const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
afterAll(async () => {
  await browser.close();
  await sql.end();
  await receiver.close();
});

const shot = (page: Page, panel: string) => page.locator(`#${panel}`).screenshot({ path: join(ARTIFACTS, `console-${panel}.png`) });
const publish = (url: string, body: unknown) =>
  fetch(`${url}/v1/mesh/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(`${url}/console`);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#key', key);
  await page.click('#login button[type=submit]');
  await page.locator('#console').waitFor({ state: 'visible' });
}

describe('the console', () => {
  const page = browser.newPage();

  test('refuses a wrong key and signs in with the right one, and the session holds on every instance', async () => {
    const p = await page;
    const errors: string[] = [];
    p.on('pageerror', (err) => errors.push(err.message));
    await p.goto(`${A.url}/console`);
    await p.locator('#login').waitFor({ state: 'visible' });
    await p.fill('#key', 'not-the-key-at-all-0000');
    await p.click('#login button[type=submit]');
    await p.waitForFunction(() => document.querySelector('#login-error')?.textContent === 'Wrong key.');
    expect(await p.locator('#console').isHidden()).toBe(true);
    await p.fill('#key', KEY);
    await p.click('#login button[type=submit]');
    await p.locator('#console').waitFor({ state: 'visible' });
    expect(await p.textContent('#role')).toBe('admin');
    expect(await p.textContent('#where')).toBe('served by A (fra)');
    // The cookie is HttpOnly and SameSite=Strict: the page's scripts cannot read it.
    const [cookie] = (await p.context().cookies()).filter((c) => c.name === 'pgmesh_console');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await p.evaluate(() => document.cookie)).not.toContain('pgmesh_console');
    // The console's own connection (mesh.js) opens.
    await p.waitForFunction(() => document.querySelector('#live')?.textContent?.startsWith('live'));
    // The same session on another instance (cookies do not depend on the port): no second sign-in.
    const other = await browser.newPage({ storageState: await p.context().storageState() });
    await other.goto(`${C.url}/console`);
    await other.locator('#console').waitFor({ state: 'visible' });
    expect(await other.textContent('#where')).toBe('served by C (sin)');
    await other.close();
    expect(errors).toEqual([]);
  }, 60_000);

  test('fits a phone: nothing wider than the screen but the tables, which scroll in their panel', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, storageState: await (await page).context().storageState() });
    await phone.goto(`${B.url}/console`);
    await phone.locator('#instances-table tr[data-instance="A"]').waitFor();
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(ARTIFACTS, 'console-phone.png') });
    await phone.close();
  }, 30_000);

  test('lists all three instances with their regions and runtimes', async () => {
    const p = await page;
    for (const [i, id] of ['A', 'B', 'C'].entries()) {
      const row = p.locator(`#instances-table tr[data-instance="${id}"]`);
      await row.waitFor();
      await p.waitForFunction((id) => document.querySelector(`#instances-table tr[data-instance="${id}"]`)?.textContent?.includes('pgmesh'), id);
      const text = await row.textContent();
      expect(text).toContain(REGIONS[i]!);
      expect(text).toContain(['node', 'bun', 'deno'][i]!);
      expect(await row.getAttribute('data-state')).toBe('ready');
    }
    await shot(p, 'instances');
  }, 30_000);

  test('a publish from a script moves the traffic chart within two seconds', async () => {
    const p = await page;
    await p.locator('#chart-published svg path').first().waitFor({ state: 'attached' });
    // Quiet first: the chart's newest value is 0.
    await p.waitForFunction(() => document.querySelector('#chart-published [data-now]')?.getAttribute('data-value') === '0', undefined, { timeout: 15_000 });
    const before = await p.locator('#chart-published svg path.total').getAttribute('d');
    let publishing = true;
    const publisher = (async () => {
      while (publishing) expect((await publish(B.url, { c: 'traffic', d: 'x' })).status).toBe(200);
    })();
    const started = Date.now();
    try {
      await p.waitForFunction(() => Number(document.querySelector('#chart-published [data-now]')?.getAttribute('data-value')) > 0, undefined, { timeout: 2000 });
    } finally {
      publishing = false;
      await publisher;
    }
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await p.locator('#chart-published svg path.total').getAttribute('d')).not.toBe(before);
    await shot(p, 'traffic');
  }, 30_000);

  test("finds a user connected on B from A's console, subscribes them, and kicks them (4003)", async () => {
    const p = await page;
    const client = await B.login('kim');
    await p.fill('#user-uid', 'kim');
    await p.click('#user-search button[type=submit]');
    const row = p.locator('#user-connections tr[data-connection]');
    await row.waitFor();
    const text = await row.textContent();
    expect(text).toContain('B');
    expect(text).toContain('websocket');
    expect(text).toContain('127.0.0.1');
    // Subscribed from the console: the client hears the channel.
    await p.fill('#subscribe-channel', 'ops_room');
    await p.click('#subscribe-user');
    await p.waitForFunction(() => document.querySelector('#user-connections tr[data-connection]')?.textContent?.includes('ops_room'));
    expect((await publish(A.url, { c: 'ops_room', d: 'hello kim' })).status).toBe(200);
    // A `d` string reaches the client verbatim (the message-center form).
    await client.next((f) => f === 'hello kim');
    await shot(p, 'users');
    await p.fill('#kick-reason', 'maintenance');
    await p.click('#user-connections tr[data-connection] button');
    expect(await client.closed).toEqual({ code: 4003, reason: 'maintenance' });
    await p.waitForFunction(() => document.querySelector('#user-status')?.textContent === 'kim is offline');
  }, 30_000);

  test('a webhook target answering 500 shows as failing with its error, then recovers', async () => {
    const p = await page;
    receiver.failNext(3, 500);
    const client = await C.login('hooked');
    const row = p.locator('#hooks-table tr[data-target=""]');
    await p.waitForFunction(() => document.querySelector('#hooks-table tr[data-target=""] .status')?.textContent === 'failing', undefined, { timeout: 15_000 });
    expect(await row.locator('.last-error').textContent()).toBe('HTTP 500');
    await shot(p, 'hooks');
    await p.waitForFunction(() => document.querySelector('#hooks-table tr[data-target=""] .status')?.textContent === 'ok', undefined, { timeout: 30_000 });
    expect(receiver.delivered().some((e) => e.type === 'connect' && e.uid === 'hooked')).toBe(true);
    client.close();
  }, 60_000);

  test('counts refused inputs by code', async () => {
    const p = await page;
    const client = await B.login('clumsy');
    client.socket.send('{not json');
    await client.next((f) => typeof f === 'object' && f.code !== undefined);
    await p.locator('#problem-codes tr[data-code="ERR_BAD_JSON"]').waitFor({ timeout: 10_000 });
    await shot(p, 'problems');
    client.close();
  }, 30_000);

  test('pages through 100,000 channels, and shows one channel live', async () => {
    const p = await page;
    // 100,000 channels held by one connection of the live instance A, written as its presence would be.
    await sql`insert into mesh_connection (id, instance, uid, transport, connected_at) values ('A.bulk', 'A', 'bulk', 'websocket', now())`;
    await sql`insert into mesh_subscription (connection, channel, uid) select 'A.bulk', 'bulk:' || lpad(n::text, 6, '0'), 'bulk' from generate_series(1, 100000) n`;
    try {
      await p.fill('#channels-prefix', 'bulk:');
      await p.click('#channels-search button[type=submit]');
      await p.waitForFunction(() => document.querySelector('#channels-count')?.textContent?.startsWith('100,000'), undefined, { timeout: 15_000 });
      const first = () => p.locator('#channels-table tbody tr').first().getAttribute('data-channel');
      expect(await first()).toBe('bulk:000001');
      for (const expected of ['bulk:000051', 'bulk:000101', 'bulk:000151']) {
        await p.click('#channels-next');
        await p.waitForFunction((c) => document.querySelector('#channels-table tbody tr')?.getAttribute('data-channel') === c, expected, { timeout: 10_000 });
      }
      await p.fill('#channels-prefix', 'bulk:09999');
      await p.click('#channels-search button[type=submit]');
      await p.waitForFunction(() => document.querySelector('#channels-count')?.textContent?.startsWith('10 with'), undefined, { timeout: 10_000 });
    } finally {
      await sql`delete from mesh_subscription where connection = 'A.bulk'`;
      await sql`delete from mesh_connection where id = 'A.bulk'`;
    }
    // One real channel: its members, its last message, then a new one arriving live.
    const ann = await C.login('ann');
    expect((await ann.request({ op: 'subscribe', channel: 'room_7' })).success).toBe(true);
    expect((await publish(A.url, { c: 'room_7', d: 'before' })).status).toBe(200);
    await p.fill('#channels-prefix', 'room_');
    await p.click('#channels-search button[type=submit]');
    await p.click('#channels-table tr[data-channel="room_7"]');
    await p.waitForFunction(() => document.querySelector('#channel-members')?.textContent === 'ann');
    await p.waitForFunction(() => document.querySelector('#channel-messages')?.textContent?.includes('before'));
    expect((await publish(B.url, { c: 'room_7', d: 'live one' })).status).toBe(200);
    await p.waitForFunction(() => document.querySelector('#channel-messages li')?.textContent?.includes('live one'), undefined, { timeout: 10_000 });
    await shot(p, 'channels');
    // Looking does not count: the console is no subscriber of the channel.
    const channel = (await (await fetch(`${A.url}/v1/mesh/channels/room_7`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { subscribers: number };
    expect(channel.subscribers).toBe(1);
    ann.close();
  }, 60_000);

  test('a read-only key sees everything and changes nothing; a change without the CSRF token is refused', async () => {
    const reader = await browser.newPage();
    await signIn(reader, A.url, READ_KEY);
    expect(await reader.textContent('#role')).toBe('read-only');
    const client = await A.login('rosa');
    await reader.fill('#user-uid', 'rosa');
    await reader.click('#user-search button[type=submit]');
    await reader.locator('#user-connections tr[data-connection]').waitFor();
    expect(await reader.locator('#user-connections button').count()).toBe(0);
    expect(await reader.locator('#user-actions').isHidden()).toBe(true);
    // The API refuses the read-only session's change even with its CSRF token.
    const refused = await reader.evaluate(async () => {
      const me = await (await fetch('/console/session')).json();
      const res = await fetch('/v1/mesh/users/rosa/connections', { method: 'DELETE', headers: { 'x-pgmesh-csrf': me.csrf } });
      return { status: res.status, body: await res.json() };
    });
    expect(refused).toEqual({ status: 403, body: expect.objectContaining({ code: 'ERR_READ_ONLY' }) });
    await reader.close();
    // An admin session's change without the CSRF token (what a page on another site could make the browser send).
    const p = await page;
    const forged = await p.evaluate(async () => {
      const res = await fetch('/v1/mesh/users/rosa/connections', { method: 'DELETE' });
      return { status: res.status, body: await res.json() };
    });
    expect(forged).toEqual({ status: 403, body: expect.objectContaining({ code: 'ERR_CSRF' }) });
    const online = (await (await fetch(`${A.url}/v1/mesh/users/rosa`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { online: boolean };
    expect(online.online).toBe(true);
    client.close();
  }, 30_000);

  test("the console's own connection reads any channel, watches no member list, publishes to none, calls no backend; its token cannot be forged with the app's JWT secret", async () => {
    const p = await page;
    const consoleToken = await p.evaluate(async () => (await (await fetch('/console/session')).json()).token as string);
    const socket = await connect(`${B.url.replace('http', 'ws')}/v1/ws`);
    try {
      expect(await socket.request({ op: 'auth', token: consoleToken })).toMatchObject({ success: true, uid: '$console' });
      expect(await socket.request({ op: 'subscribe', channel: 'user:1001' })).toMatchObject({ success: true });
      // It is in no presence, so it watches no member list: one would never hear of joins nobody else watches.
      expect(await socket.request({ op: 'subscribe', channel: 'room_7', presence: true })).toMatchObject({ success: false, reason: 'ERR_FORBIDDEN' });
      expect(await socket.request({ op: 'publish', channel: 'room_7', data: 'x' })).toMatchObject({ success: false, reason: 'ERR_FORBIDDEN' });
      expect(await socket.request({ op: 'rpc', method: 'm', data: {} })).toMatchObject({ success: false, reason: 'ERR_FORBIDDEN' });
    } finally {
      socket.close();
    }
    // Signed with the application's JWT secret, a token naming the console's issuer is still not the console's.
    const forger = await connect(`${B.url.replace('http', 'ws')}/v1/ws`);
    try {
      expect(await forger.request({ op: 'auth', token: await token('$console', { iss: 'pgmesh-console' }) })).toMatchObject({ success: false, reason: 'ERR_TOKEN_INVALID' });
    } finally {
      forger.close();
    }
  }, 30_000);

  test('an instance SIGKILLed shows as gone within the TTL', async () => {
    const p = await page;
    const killed = Date.now();
    C.child.kill('SIGKILL');
    await p.waitForFunction(() => document.querySelector('#instances-table tr[data-instance="C"]')?.getAttribute('data-state') === 'gone', undefined, { timeout: TTL_MS });
    expect(Date.now() - killed).toBeLessThan(TTL_MS);
    expect(await p.locator('#instances-table tr[data-instance="C"]').getAttribute('class')).toBe('gone');
  }, 30_000);
});

describe('the console with no key configured', () => {
  test('opens for a browser on this machine without a key, and for no one else', async () => {
    const mesh = await startProcess('bun', { MESH_INSTANCE_ID: 'solo' });
    try {
      const page = await browser.newPage();
      await page.goto(`${mesh.url}/console`);
      await page.locator('#console').waitFor({ state: 'visible' });
      expect(await page.textContent('#role')).toBe('admin');
      await page.locator('#instances-table tr[data-instance="solo"]').waitFor();
      await page.close();
      // A rebound DNS name reaches this machine as same-origin, but under its own host name: refused.
      const rebound = await fetch(`${mesh.url}/console/session`, { method: 'POST', headers: { host: 'evil.example', 'content-type': 'application/json' }, body: '{}' });
      expect(rebound.status).toBe(403);
      const asked = await fetch(`${mesh.url}/console/session`, { headers: { host: 'evil.example' } });
      expect(await asked.json()).toMatchObject({ code: 'ERR_NOT_AUTH', keyRequired: true });
      // A request a proxy on this machine forwards is not local either.
      const proxied = await fetch(`${mesh.url}/console/session`, { method: 'POST', headers: { 'x-forwarded-for': '198.51.100.9', 'content-type': 'application/json' }, body: '{}' });
      expect(proxied.status).toBe(403);
    } finally {
      await mesh.stop();
    }
  }, 60_000);
});

describe('the console behind a proxy', () => {
  test('wrong keys are limited per client address, as the proxy tells it: one guesser does not lock everyone out', async () => {
    const mesh = await startProcess('bun', { MESH_INSTANCE_ID: 'proxied', MESH_API_KEY: KEY, MESH_TRUSTED_PROXIES: '127.0.0.0/8' });
    try {
      const signIn = (key: string, client: string) =>
        fetch(`${mesh.url}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': client }, body: JSON.stringify({ key }) });
      for (let i = 0; i < 10; i++) expect((await signIn('a-wrong-key-000000000', '198.51.100.1')).status).toBe(401);
      const limited = await signIn(KEY, '198.51.100.1');
      expect(limited.status).toBe(429);
      expect(await limited.json()).toMatchObject({ code: 'ERR_LIMIT' });
      // Another client behind the same proxy signs in.
      expect((await signIn(KEY, '198.51.100.2')).status).toBe(200);
    } finally {
      await mesh.stop();
    }
  }, 60_000);
});
