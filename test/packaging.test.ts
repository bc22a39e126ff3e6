/** The two ways dependencies are pinned agree: deno.json maps exactly the versions package-lock.json installs. */
import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_FLAGS } from './harness/process.ts';

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

  test('every package src/ imports is a pinned dependency and is mapped for Deno', () => {
    const imported = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts')) {
          for (const [, spec] of readFileSync(path, 'utf8').matchAll(/(?:from|import\()\s*'([^'.][^']*)'/g)) {
            if (spec!.startsWith('node:') || spec === 'bun') continue;
            const parts = spec!.split('/');
            imported.add(spec!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
          }
        }
      }
    };
    walk(join(root, 'src'));
    expect(imported.size).toBeGreaterThan(5);
    for (const name of imported) {
      expect(`${name} in package.json dependencies: ${name in pkg.dependencies}`).toBe(`${name} in package.json dependencies: true`);
      expect(`${name} in deno.json imports: ${name in deno.imports}`).toBe(`${name} in deno.json imports: true`);
    }
  });

  test('every command the README tells a person to run exists', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const npmScripts = [...readme.matchAll(/npm (?:run ([\w:-]+)|(start|test)\b)/g)].map((m) => m[1] ?? m[2]!);
    const denoTasks = [...readme.matchAll(/deno task ([\w:-]+)/g)].map((m) => m[1]!);
    expect(npmScripts).toContain('start');
    expect(npmScripts).toContain('test');
    for (const name of new Set(npmScripts)) expect(`npm script ${name}: ${name in pkg.scripts}`).toBe(`npm script ${name}: true`);
    for (const name of new Set(denoTasks)) expect(`deno task ${name}: ${name in deno.tasks}`).toBe(`deno task ${name}: true`);
  });

  // The tests and the benchmark start Node as the harness says: that must be what `npm start` runs. And no
  // tsx CLI in between, which kills the server ~30 ms after passing a signal on (no drain).
  test("npm start runs Node itself, with the harness's V8 flags", () => {
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} --import tsx src/main.ts`);
  });

  test('the browser client is importable as pgmesh/client', async () => {
    const client = await import('pgmesh/client');
    expect(typeof client.connect).toBe('function');
    expect(typeof client.MeshClient).toBe('function');
  });
});
