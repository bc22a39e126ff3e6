/** The reference pages stay true: every setting, route and error code is documented, and the README links every page. */
import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPERATIONS } from '../src/api/openapi.ts';
import { serverApi } from '../src/app.ts';
import { loadConfig, ConfigSchema } from '../src/config.ts';
import type { RuntimeAdapter } from '../src/runtime/adapter.ts';
import { ROOT } from './harness/process.ts';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

describe('docs/', () => {
  test('every setting of the config schema is on the settings page', () => {
    const page = read('docs/settings.md');
    for (const key of Object.keys(ConfigSchema.shape)) expect(`${key}: ${page.includes(`\`${key}\``)}`).toBe(`${key}: true`);
  });

  test('every route the server API serves is in the OpenAPI document and on the server-API page, and nothing more', () => {
    // Only the routing table is read: no handler runs.
    const api = serverApi({ config: loadConfig({}), runtime: {} as RuntimeAdapter, store: {} as never, cluster: {} as never, hub: {} as never, instance: 'docs' });
    const served = new Set(
      api.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} /v1/mesh${r.path.replace(/:(\w+)/g, '{$1}')}`),
    );
    served.add('GET /v1/mesh/openapi.json');
    const described = new Set(Object.entries(OPERATIONS).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`)));
    expect([...served].sort()).toEqual([...described].sort());
    const page = read('docs/server-api.md');
    for (const route of described) expect(`${route}: ${page.includes(`### ${route}`)}`).toBe(`${route}: true`);
  });

  test('every error code is explained to clients or to callers', () => {
    const pages = read('docs/protocol.md') + read('docs/server-api.md');
    const codes = [...read('src/core/errors.ts').matchAll(/^\s+(ERR_\w+):/gm)].map((m) => m[1]!);
    expect(codes.length).toBeGreaterThan(10);
    for (const code of codes) expect(`${code}: ${pages.includes(code)}`).toBe(`${code}: true`);
  });

  test('the README links every page under docs/, and each link resolves', () => {
    const readme = read('README.md');
    for (const page of readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md'))) expect(readme).toContain(`](docs/${page})`);
    for (const [, target] of readme.matchAll(/\]\((docs\/[^)#]+)/g)) expect(() => read(target!)).not.toThrow();
  });
});
