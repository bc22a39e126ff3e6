/**
 * docs/laravel.md as printed: its pgmesh settings and the app's .env describe one
 * app; the server library, configured as config/broadcasting.php configures it
 * from that .env, triggers on pgmesh; and Echo, configured as the guide's echo.js
 * with the .env's VITE_ values, receives it in Chromium.
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import PusherServer from 'pusher';
import { loadConfig } from '../src/config.ts';
import { launchBrowser } from './harness/browser.ts';
import { startTestMesh } from './harness/mesh.ts';
import { ROOT } from './harness/process.ts';

const page = readFileSync(join(ROOT, 'docs', 'laravel.md'), 'utf8');
const blocks = (lang: string) => [...page.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
const vars = (block: string) => Object.fromEntries([...block.matchAll(/^([A-Z_]+)=("?)(.*?)\2(?:\s+#.*)?$/gm)].map((m) => [m[1]!, m[3]!]));
const meshEnv = vars(blocks('sh').find((b) => b.includes('PUSHER_APPS='))!);
const appEnv = vars(blocks('sh').find((b) => b.includes('BROADCAST_CONNECTION'))!);
const expand = (v: string) => v.replace(/\$\{(\w+)\}/g, (_, name: string) => appEnv[name] ?? '');
const echoJs = blocks('js').find((b) => b.includes('new Echo'))!;

describe('docs/laravel.md', () => {
  test("pgmesh's settings and the app's .env name the same app", () => {
    const config = loadConfig({ PUSHER_APPS: meshEnv.PUSHER_APPS });
    expect(config.PUSHER_APPS).toEqual([{ id: appEnv.PUSHER_APP_ID, key: appEnv.PUSHER_APP_KEY, secret: appEnv.PUSHER_APP_SECRET }]);
    expect(loadConfig({ PUSHER_APPS: meshEnv.PUSHER_APPS, PUSHER_CLIENT_EVENTS: '1001=off', PUSHER_WEBHOOK_EVENTS: '1001=member_added+member_removed' }).PUSHER_CLIENT_EVENTS).toEqual({ '1001': false });
    expect(() => loadConfig({ PUSHER_APPS: meshEnv.PUSHER_APPS, PUSHER_CLIENT_EVENTS: '9999=off' })).toThrow('app 9999 is not in PUSHER_APPS');
  });

  test("the server library configured from the .env triggers on pgmesh, and the guide's Echo receives it in Chromium", async () => {
    const mesh = await startTestMesh({ PUSHER_APPS: meshEnv.PUSHER_APPS! }, { stopAfterAll: false });
    const browser = await launchBrowser();
    try {
      const port = String(mesh.port);
      const vite: Record<string, string> = Object.fromEntries(Object.entries(appEnv).filter(([k]) => k.startsWith('VITE_')).map(([k, v]) => [k, expand(v)]));
      vite.VITE_PUSHER_PORT = port;
      // config/broadcasting.php's options, from the .env: host, port, scheme -> useTLS.
      const sdk = new PusherServer({ appId: appEnv.PUSHER_APP_ID!, key: appEnv.PUSHER_APP_KEY!, secret: appEnv.PUSHER_APP_SECRET!, host: appEnv.PUSHER_HOST!, port, useTLS: appEnv.PUSHER_SCHEME === 'https' });
      const tab = await browser.newPage();
      await tab.goto(`${mesh.url}/`);
      await tab.addScriptTag({ path: join(ROOT, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js') });
      await tab.addScriptTag({ path: join(ROOT, 'node_modules', 'laravel-echo', 'dist', 'echo.iife.js') });
      // The guide's echo.js, its imports done by the script tags and import.meta.env standing for Vite's.
      const body = echoJs.replace(/^import .*$/gm, '').replace('window.Pusher = Pusher;', '').replaceAll('import.meta.env', 'env').replace('new Echo(', 'new Echo.default(');
      await tab.evaluate(
        ({ body, env }) => {
          new Function('env', body)(env);
          (window as any).got = [];
          (window as any).Echo.channel('orders').listen('.order.shipped', (e: unknown) => (window as any).got.push(e));
        },
        { body, env: vite },
      );
      await tab.waitForFunction(() => (window as any).Echo.connector.pusher.connection.state === 'connected', null, { timeout: 10_000 });
      await tab.waitForFunction(() => (window as any).Echo.connector.pusher.channel('orders')?.subscribed === true, null, { timeout: 10_000 });
      await sdk.trigger('orders', 'order.shipped', { id: 7 });
      await tab.waitForFunction(() => (window as any).got.length === 1, null, { timeout: 10_000 });
      expect(await tab.evaluate(() => (window as any).got)).toEqual([{ id: 7 }]);
    } finally {
      await browser.close();
      await mesh.stop();
    }
  }, 60_000);
});
