/**
 * The SSE fallback from a page on another origin, in a real browser: the app on one
 * origin, pgmesh on another. Listed origins get the stream, the uplink (preflight
 * included) and cookies; any other origin gets nothing a browser will hand the page.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchBrowser } from './harness/browser.ts';
import { startTestMesh } from './harness/mesh.ts';
import { ROOT } from './harness/process.ts';
import { token } from './harness/tokens.ts';

// The application's own server: a page and its copy of the client, on an origin of its own.
const PAGE = `<!doctype html><script type="module">
  import { connect } from '/mesh.js';
  const q = new URLSearchParams(location.search);
  window.got = [];
  window.errors = [];
  const mesh = connect({ url: q.get('mesh'), token: q.get('token') ?? '', channels: ['@user'], transport: 'sse', credentials: q.has('cookie') });
  mesh.addEventListener('message', (e) => window.got.push(e.detail.data));
  mesh.addEventListener('error', (e) => window.errors.push(String(e.detail.error)));
  mesh.addEventListener('disconnect', (e) => window.errors.push(e.detail.reason));
  window.mesh = mesh;
</script>`;
const serveApp = () =>
  Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (req) =>
      new URL(req.url).pathname === '/mesh.js'
        ? new Response(readFileSync(join(ROOT, 'public', 'mesh.js')), { headers: { 'content-type': 'text/javascript' } })
        : new Response(PAGE, { headers: { 'content-type': 'text/html' } }),
  });
const app = serveApp();
// The same application on another port: another origin, not in the list.
const unlisted = serveApp();
const allowed = `http://127.0.0.1:${app.port}`;
const mesh = await startTestMesh({ MESH_CORS_ORIGINS: `https://app.example.com, ${allowed}` });
const browser = await launchBrowser();
afterAll(async () => {
  await browser.close();
  app.stop(true);
  unlisted.stop(true);
});

async function openPage(origin: string, query: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/?mesh=${encodeURIComponent(mesh.url)}&${query}`);
  return { context, page };
}

describe('SSE across origins (MESH_CORS_ORIGINS)', () => {
  test('a listed origin streams, publishes over the uplink (with its preflight) and receives', async () => {
    const { context, page } = await openPage(allowed, `token=${await token('cors-1')}`);
    await page.waitForFunction(() => (window as any).mesh.state === 'open', null, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as any).mesh.transport)).toBe('sse');
    await mesh.publish({ c: 'user:cors-1', d: 'to the other origin' });
    await page.waitForFunction(() => (window as any).got.includes('to the other origin'), null, { timeout: 10_000 });
    const reply = await page.evaluate(() => (window as any).mesh.publish('@user', 'from the page'));
    expect(reply).toMatchObject({ success: true });
    await page.waitForFunction(() => (window as any).got.length === 2, null, { timeout: 10_000 });
    await context.close();
  });

  test('with credentials the token may come in the cookie of the pgmesh host', async () => {
    const context = await browser.newContext();
    await context.addCookies([{ name: 'pgmesh_token', value: await token('cors-2'), url: mesh.url }]);
    const page = await context.newPage();
    await page.goto(`${allowed}/?mesh=${encodeURIComponent(mesh.url)}&cookie=1`);
    await page.waitForFunction(() => (window as any).mesh.state === 'open', null, { timeout: 10_000 });
    await mesh.publish({ c: 'user:cors-2', d: 'cookie-borne' });
    await page.waitForFunction(() => (window as any).got.includes('cookie-borne'), null, { timeout: 10_000 });
    await context.close();
  });

  test('an origin that is not listed gets no stream: the browser refuses it to the page', async () => {
    const { context, page } = await openPage(`http://127.0.0.1:${unlisted.port}`, `token=${await token('cors-3')}`);
    await page.waitForFunction(() => (window as any).errors.length > 0, null, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as any).mesh.state)).not.toBe('open');
    await context.close();
  });

  test('the preflight of the uplink answers the listed origin only', async () => {
    const preflight = (origin: string) =>
      fetch(`${mesh.url}/v1/sse/some-session`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
    const yes = await preflight('https://app.example.com');
    expect(yes.status).toBe(204);
    expect(yes.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(yes.headers.get('access-control-allow-credentials')).toBe('true');
    expect(yes.headers.get('access-control-allow-headers')).toContain('authorization');
    const no = await preflight('https://evil.example');
    expect(no.headers.get('access-control-allow-origin')).toBeNull();
    const stream = await fetch(`${mesh.url}/v1/sse?token=${await token('cors-4')}`, { headers: { origin: 'https://app.example.com' } });
    expect(stream.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    await stream.body?.cancel();
  });
});
