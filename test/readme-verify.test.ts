/**
 * The README's signature checks, as printed, run: the Node snippet under Node
 * and the PHP snippet under the PHP CLI take pgmesh's signature and refuse a
 * tampered body, an old timestamp and another secret.
 */
import { describe, expect, test } from 'bun:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '../src/hooks/signature.ts';
import { hasPhp } from './harness/php.ts';

const readme = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8');
const block = (lang: string, containing: string) => [...readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!).find((b) => b.includes(containing))!;
const dir = mkdtempSync(join(tmpdir(), 'pgmesh-readme-'));
const SECRET = 'readme-secret-0123456789';
const body = '{"events":[{"id":"1","type":"user_online","uid":"42","at":0}]}';
const cases = [
  { name: 'good', body, header: sign(SECRET, body), secret: SECRET, ok: true },
  { name: 'tampered body', body: body.replace('42', '43'), header: sign(SECRET, body), secret: SECRET, ok: false },
  { name: 'old timestamp', body, header: sign(SECRET, body, Date.now() - 10 * 60_000), secret: SECRET, ok: false },
  { name: 'another secret', body, header: sign('another-secret-0123456789', body), secret: SECRET, ok: false },
  { name: 'no header', body, header: '', secret: SECRET, ok: false },
];

describe("the README's signature checks", () => {
  test('Node', () => {
    const file = join(dir, 'verify.mjs');
    writeFileSync(file, `${block('js', 'pgmeshVerify')}\nconst [body, header, secret] = JSON.parse(process.argv[2]);\nconsole.log(pgmeshVerify(body, header || undefined, secret));\n`);
    for (const c of cases) {
      const out = execFileSync('node', [file, JSON.stringify([c.body, c.header, c.secret])], { encoding: 'utf8' }).trim();
      expect(`${c.name}: ${out}`).toBe(`${c.name}: ${c.ok}`);
    }
  });

  test.skipIf(!hasPhp)('PHP', () => {
    const file = join(dir, 'verify.php');
    writeFileSync(file, `<?php\n${block('php', 'pgmesh_verify')}\nvar_export(pgmesh_verify($argv[1], $argv[2] === '' ? null : $argv[2], $argv[3]));\n`);
    for (const c of cases) {
      const out = execFileSync('php', [file, c.body, c.header, c.secret], { encoding: 'utf8' }).trim();
      expect(`${c.name}: ${out}`).toBe(`${c.name}: ${c.ok}`);
    }
  });
});
