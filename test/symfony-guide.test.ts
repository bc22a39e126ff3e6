/**
 * docs/symfony.md as printed: its compose environment is a configuration pgmesh
 * accepts, the app's .env signs with the hub's publisher key, and with both, the
 * Symfony publisher reaches a subscriber of the guide's URI template, through
 * the main port and through the publish port the guide suggests.
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { startTestMesh } from './harness/mesh.ts';
import { freshDatabase } from './harness/postgres.ts';
import { hasSymfonyMercure, runPhp } from './harness/php.ts';
import { ROOT } from './harness/process.ts';

const page = readFileSync(join(ROOT, 'docs', 'symfony.md'), 'utf8');
const blocks = (lang: string) => [...page.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
const unquote = (v: string) => v.trim().replace(/^'(.*)'$/, '$1');
// The hub's environment, from the compose file's `environment:` block.
const compose = blocks('yaml').find((b) => b.includes('MERCURE_PUBLISHER_JWT_KEY'))!;
const hubEnv = Object.fromEntries([...compose.matchAll(/^\s{6}([A-Z_]+): (.*)$/gm)].map((m) => [m[1]!, unquote(m[2]!)]));
// The app's .env.
const appEnv = Object.fromEntries([...blocks('sh').find((b) => b.includes('MERCURE_JWT_SECRET'))!.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, unquote(m[2]!)]));
const selector = /searchParams\.append\('topic', '([^']+)'\)/.exec(blocks('js').join('\n'))![1]!;

describe('docs/symfony.md', () => {
  test('the compose environment is a configuration pgmesh accepts, and the app signs with the hub publisher key', () => {
    const config = loadConfig(hubEnv);
    expect(config.MERCURE_PUBLISHER_JWT_KEY).toBeDefined();
    expect(config.MERCURE_ANONYMOUS).toBe(true);
    expect(appEnv.MERCURE_JWT_SECRET).toBe(hubEnv.MERCURE_PUBLISHER_JWT_KEY!);
    expect(new URL(appEnv.MERCURE_URL!).pathname).toBe('/.well-known/mercure');
  });

  test.skipIf(!hasSymfonyMercure)("with both, Symfony's publisher reaches a subscriber of the guide's URI template", async () => {
    const { DATABASE_URL: _, MERCURE_PUBLIC_URL: __, ...env } = hubEnv;
    const mesh = await startTestMesh(env, { stopAfterAll: false });
    try {
      await expectDelivered(mesh.url, `${mesh.url}/.well-known/mercure`, 'https://example.com/books/1', '{"status":"shipped"}');
    } finally {
      await mesh.stop();
    }
  }, 30_000);

  test.skipIf(!hasSymfonyMercure)("through the publish port (MESH_PUBLISH_PORT, MERCURE_PUBLIC_URL as the guide sets it), Symfony's publisher reaches a subscriber on the main port", async () => {
    const { DATABASE_URL: _, ...env } = hubEnv;
    expect(env.MERCURE_PUBLIC_URL).toBeDefined();
    const mesh = await startTestMesh({ ...env, DATABASE_URL: await freshDatabase(), MESH_PUBLISH_PORT: '0' }, { stopAfterAll: false });
    try {
      await expectDelivered(mesh.url, `http://127.0.0.1:${mesh.publishThread!.port}/.well-known/mercure`, 'https://example.com/books/2', '{"status":"packed"}');
    } finally {
      await mesh.stop();
    }
  }, 30_000);
});

/** Subscribes on `hub` to the guide's selector, has Symfony publish `data` on `topic` to `mercureUrl`, and expects the update with the id Symfony was answered. */
async function expectDelivered(hub: string, mercureUrl: string, topic: string, data: string): Promise<void> {
  const controller = new AbortController();
  const response = await fetch(`${hub}/.well-known/mercure?topic=${encodeURIComponent(selector)}`, { signal: controller.signal });
  const reader = response.body!.getReader();
  try {
    const sent = await runPhp(join(ROOT, 'examples', 'symfony', 'publish.php'), [topic, data], { MERCURE_URL: mercureUrl, MERCURE_JWT_SECRET: appEnv.MERCURE_JWT_SECRET! });
    expect(sent.stderr).toBe('');
    let text = '';
    while (!text.includes(data)) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`stream ended: ${text}`);
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).toContain(`id: ${sent.stdout.trim()}\ndata: ${data}\n`);
  } finally {
    controller.abort();
  }
}
