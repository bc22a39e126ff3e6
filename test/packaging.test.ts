/** The two ways dependencies are pinned agree: deno.json maps exactly the versions package-lock.json installs. */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const read = (file: string) => JSON.parse(readFileSync(join(root, file), 'utf8'));

describe('pinned dependencies', () => {
  const lock = read('package-lock.json') as { packages: Record<string, { version: string }> };
  const pkg = read('package.json') as { dependencies: Record<string, string>; scripts: Record<string, string> };
  const deno = read('deno.json') as { imports: Record<string, string>; tasks: Record<string, string> };

  test('every runtime dependency is pinned exactly in package.json', () => {
    for (const [name, range] of Object.entries(pkg.dependencies)) {
      expect(`${name}@${range}`).toBe(`${name}@${lock.packages[`node_modules/${name}`]!.version}`);
    }
  });

  test('deno.json imports name the versions package-lock.json installs', () => {
    for (const [specifier, target] of Object.entries(deno.imports)) {
      const match = /^npm:\/?(@?[^@]+)@([^/]+)\/?$/.exec(target);
      expect(match).not.toBeNull();
      const [, name, version] = match!;
      expect(`${specifier} -> ${name}@${version}`).toBe(`${specifier} -> ${name}@${lock.packages[`node_modules/${name}`]!.version}`);
    }
  });

  test('every module src/ imports on Deno is mapped', () => {
    const needed = ['hono', '@hono/node-server', 'postgres', 'zod', 'jose', '@electric-sql/pglite', 'ws'];
    for (const name of needed) expect(Object.keys(deno.imports)).toContain(name);
  });

  test('the start commands of the README exist', () => {
    expect(pkg.scripts.start).toBe('tsx src/main.ts');
    expect(pkg.scripts['start:bun']).toBe('bun src/main.ts');
    expect(deno.tasks.start).toBe('./node_modules/.bin/deno run -A src/main.ts');
  });

  test('the browser client is importable as pgmesh/client', async () => {
    const client = await import('pgmesh/client');
    expect(typeof client.connect).toBe('function');
    expect(typeof client.MeshClient).toBe('function');
  });
});
