/**
 * The native load generator (bench/clients/wsclients.c), for the scenarios at size, where
 * the JavaScript generators would spend more CPU than the servers they measure. It is
 * built with the machine's C compiler (`cc`, or $CC) on first use, into node_modules/.cache.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { token } from '../test/harness/tokens.ts';
import { ROOT } from '../test/harness/process.ts';

const SOURCE = join(ROOT, 'bench', 'clients', 'wsclients.c');
const CACHE = join(ROOT, 'node_modules', '.cache', 'pgmesh-bench');
const BINARY = join(CACHE, 'wsclients');

/** The generator's path, compiled first when the binary is missing or older than its source. */
export function nativeGenerator(): string {
  const built = (() => {
    try {
      return statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs;
    } catch {
      return false;
    }
  })();
  if (!built) {
    mkdirSync(CACHE, { recursive: true });
    try {
      execFileSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-o', BINARY, SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch (err) {
      throw new Error(`the scenarios at size build bench/clients/wsclients.c with a C compiler (cc, or set CC): ${(err as Error).message}`);
    }
  }
  return BINARY;
}

/** Signs a token for each user `<prefix><from + i>` and writes them one a line to a file the generator reads. */
export async function tokensFile(name: string, secret: string, prefix: string, from: number, count: number): Promise<string> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - i) }, (_, k) => token(`${prefix}${from + i + k}`, { exp: Math.floor(Date.now() / 1000) + 86_400 }, secret));
    tokens.push(...(await Promise.all(batch)));
  }
  mkdirSync(CACHE, { recursive: true });
  const file = join(CACHE, `${name}.tokens`);
  writeFileSync(file, `${tokens.join('\n')}\n`);
  return file;
}

export interface NativeClients {
  mode: 'hold' | 'storm';
  /** ws:// URL of the server's WebSocket endpoint; its path and query are sent as they are. */
  url: string;
  count: number;
  channel: string;
  /** From tokensFile: each client authenticates as its own user and also subscribes to `@user`. */
  tokens?: string;
  localAddresses: string[];
  concurrency: number;
  sampleEvery?: number;
  lanes?: number;
}

/** Starts one generator process; its stdout and stderr are piped, stdin too (a storm holds its clients until stdin ends). */
export function spawnNative(clients: NativeClients): ChildProcess {
  const url = new URL(clients.url);
  const args = {
    '--mode': clients.mode,
    '--port': url.port,
    '--path': `${url.pathname}${url.search}`,
    '--count': String(clients.count),
    '--channel': clients.channel,
    '--addresses': clients.localAddresses.join(','),
    '--concurrency': String(clients.concurrency),
    '--sample-every': String(clients.sampleEvery ?? 1),
    '--lanes': String(clients.lanes ?? 0),
    ...(clients.tokens === undefined ? {} : { '--tokens': clients.tokens }),
  };
  return spawn(nativeGenerator(), Object.entries(args).flat(), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The reconnect mode's clients (bench/clients/reconnecting.ts's, natively): `count` users from `first`, in `rooms` rooms. */
export interface NativeReconnecting {
  /** ws:// URLs of /v1/ws on every instance, without a query: the round robin goes over them in this order. */
  urls: string[];
  first: number;
  count: number;
  rooms: number;
  roomPrefix: string;
  /** From tokensFile: client i's token on line i. */
  tokens: string;
  localAddresses: string[];
  /** Clients connecting at once during the first fill. */
  concurrency: number;
}

/** Starts one reconnect-mode generator process; it reports ReconnectingReport lines. */
export function spawnNativeReconnecting(clients: NativeReconnecting): ChildProcess {
  const first = new URL(clients.urls[0]!);
  const args = {
    '--mode': 'reconnect',
    '--ports': clients.urls.map((u) => new URL(u).port).join(','),
    '--path': `${first.pathname}?format=envelope`,
    '--count': String(clients.count),
    '--first': String(clients.first),
    '--rooms': String(clients.rooms),
    '--room-prefix': clients.roomPrefix,
    '--tokens': clients.tokens,
    '--addresses': clients.localAddresses.join(','),
    '--concurrency': String(clients.concurrency),
  };
  return spawn(nativeGenerator(), Object.entries(args).flat(), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}
