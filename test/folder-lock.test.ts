/** The data folder's lock: exclusive across processes that start at the same moment, and a dead holder's lock is taken over. */
import { describe, expect, test } from 'bun:test';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { takeLock } from '../src/store/folder-lock.ts';
import { BIN, ROOT } from './harness/process.ts';

const lockModule = join(ROOT, 'src', 'store', 'folder-lock.ts');

/** A process that tries to take the lock, says whether it got it, and holds it until its stdin closes. */
function contender(dir: string) {
  const script = `
    import { takeLock } from ${JSON.stringify(lockModule)};
    let said = 'busy';
    try { takeLock(${JSON.stringify(dir)}); said = 'got'; } catch {}
    console.log(said);
    for await (const _ of process.stdin) {}
  `;
  const child = spawn(join(BIN, 'bun'), ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const answer = new Promise<string>((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
  });
  return { child, answer };
}

describe('the data folder lock', () => {
  test('six processes starting together: exactly one takes the folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-race-'));
    const contenders = Array.from({ length: 6 }, () => contender(dir));
    try {
      const answers = await Promise.all(contenders.map((c) => c.answer));
      expect(answers.filter((a) => a === 'got')).toHaveLength(1);
      expect(answers.filter((a) => a === 'busy')).toHaveLength(5);
    } finally {
      for (const c of contenders) c.child.stdin.end();
    }
  }, 30_000);

  test('a lock left by a process that died is taken over; a live holder is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgmesh-stale-'));
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dir, 'pgmesh.lock'), String(gone));
    const release = takeLock(dir);
    expect(readFileSync(join(dir, 'pgmesh.lock'), 'utf8')).toBe(String(process.pid));
    expect(() => takeLock(dir)).toThrow(`is in use by process ${process.pid}`);
    release();
    takeLock(dir)();
  });
});
