/** The process-wide guard on each runtime: a rejection or exception nothing caught is reported, and the process lives on. */
import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { escapeControls, prettyLine } from '../src/log.ts';
import { BIN, ROOT, RUNTIMES } from './harness/process.ts';

const fixture = join(ROOT, 'test', 'fixtures', 'uncaught.ts');
const commandLine = { node: ['node', '--import', 'tsx', fixture], bun: [join(BIN, 'bun'), fixture], deno: [join(BIN, 'deno'), 'run', '-A', fixture] };

describe.each(RUNTIMES)('the uncaught-error guard on %s', (runtime) => {
  test('hears a stray rejection and a stray exception, and the process goes on', () => {
    const [cmd, ...args] = commandLine[runtime];
    const run = spawnSync(cmd!, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(`${run.status} ${run.stdout.trim()}`).toBe('0 survived exception:stray exception rejection:stray rejection');
  });
});

describe('the readable log (MESH_LOG_FORMAT=pretty)', () => {
  test('a field holding a newline or a terminal escape cannot start a line of its own or steer the terminal', () => {
    const forged = 'alice\n12:00:00.000 INFO  pgmesh connection authenticated uid=admin\u001b[2J';
    const line = prettyLine(JSON.stringify({ level: 'info', time: '2026-12-05T12:00:00.000Z', msg: 'connection closed', instance: 'i\n1', uid: forged, err: { stack: 'Error: x\r\n    at y' } }));
    // One line for the entry, plus the stack's own (indented) lines.
    const lines = line.trimEnd().split('\n');
    expect(lines.length).toBe(3);
    expect(lines.slice(1).every((l) => l.startsWith('  '))).toBe(true);
    expect(line).not.toContain('\u001b');
    expect(line).not.toContain('\r');
    expect(lines[0]).toContain('uid="alice\\n12:00:00.000');
    expect(escapeControls('a\u0085b\u2028c')).toBe('a\\u0085b\\u2028c');
  });
});
