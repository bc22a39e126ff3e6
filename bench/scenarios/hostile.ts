/**
 * The attack on a public instance: good publishers (single POSTs at a fixed
 * rate, as php-fpm workers send them) measured alone, then again while a
 * hostile client (bench/clients/attacker.ts, a process of its own) sends
 * poison at full speed — POSTs whose strings Postgres cannot hold and bodies
 * nested thousands deep, and WebSocket frames of both kinds from logged-in
 * sockets, reopened whenever the server closes them. Target: every good
 * publish succeeds, the poison gets 4xx only, and the good publishers' p99
 * stays within 2x of the quiet run.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { ROOT } from '../../test/harness/process.ts';
import type { AttackConfig, AttackReport } from '../clients/attacker.ts';
import type { RunningSystem } from '../systems.ts';
import { token } from '../systems.ts';
import { payload } from '../load.ts';

export interface HostileResult {
  system: string;
  attack: 'quiet' | 'poison';
  /** Good publishes answered per second, at the fixed rate asked for. */
  goodPerSec: number;
  p50: number;
  p99: number;
  /** Good publishes that did not get a 200 (must be 0). */
  goodFailed: number;
  /** Poison requests sent, and those answered 5xx or not at all (must be 0). */
  poisonSent: number;
  poison5xx: number;
  /** Poison frames written to the sockets, and the sockets the attacker opened (each closed one is opened again). */
  poisonFrames: number;
  poisonSockets: number;
}

const GOOD_RATE = 2000;

/** Runs the attacker process for `seconds`; resolves with its report. */
function attack(config: AttackConfig): Promise<AttackReport> {
  const child = spawn('node', ['--import', 'tsx', join(ROOT, 'bench', 'clients', 'attacker.ts')], {
    cwd: ROOT,
    env: { ...process.env, ATTACK: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as AttackReport) : reject(new Error(`attacker exited with ${code}`)))),
  );
}

/** The good publishers alone, then beside the attack; two rows. */
export async function hostile(system: RunningSystem, seconds: number): Promise<HostileResult[]> {
  const good = () =>
    autocannon({
      url: system.publishUrl,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'good', d: payload(0) }) }],
      connections: 16,
      overallRate: GOOD_RATE,
      duration: seconds,
    });
  const row = (attack: HostileResult['attack'], r: autocannon.Result, poison?: AttackReport): HostileResult => ({
    system: system.name,
    attack,
    goodPerSec: r['2xx'] / seconds,
    p50: r.latency.p50,
    p99: r.latency.p99,
    goodFailed: r.non2xx + r.errors + r.timeouts,
    poisonSent: poison?.sent ?? 0,
    poison5xx: poison?.bad ?? 0,
    poisonFrames: poison?.frames ?? 0,
    poisonSockets: poison?.socketsOpened ?? 0,
  });

  const quiet = await good();
  const wsUrl = (await system.wsUrl('room')).replace(/\?.*$/, '');
  // The attacker starts first and runs a second longer: the good publishers are measured under attack throughout.
  const attacking = attack({ publishUrl: system.publishUrl, wsUrl, token: await token(), seconds: seconds + 1, sockets: 4 });
  const underAttack = await good();
  return [row('quiet', quiet), row('poison', underAttack, await attacking)];
}
