/**
 * `npm run cluster`: one command gives an embedded Postgres, three instances named
 * like regions (the last one 60 ms from the database) and a round-robin front door;
 * clients through the door land on every instance and get the same messages.
 */
import { describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { ROOT } from './harness/process.ts';
import { connect, onChannel } from './harness/ws-client.ts';
import { openSse } from './harness/sse-client.ts';
import { pollUntil } from './harness/waiter.ts';

describe('npm run cluster', () => {
  test('starts three regional instances behind a round-robin door; a message reaches clients on all of them; Ctrl-C stops it all', async () => {
    const child = spawn('npm', ['run', 'cluster'], {
      cwd: ROOT,
      env: { ...process.env, CLUSTER_PORT: '0', CLUSTER_RUNTIME: 'bun' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const front = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "cluster ready" line within 90 s: ${out}${err}`)), 90_000);
        child.stdout!.on('data', (d) => {
          out += d;
          const match = /cluster ready on (http:\/\/\S+)/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
        void exited.then((code) => reject(new Error(`npm run cluster exited (${code}): ${out}${err}`)));
      });
      for (const region of ['fra', 'iad', 'syd']) expect(out).toContain(`${region}-1 (${region})`);
      expect(out).toContain('60 ms each way from the database');

      const tokenFor = async (uid: string) => ((await (await fetch(`${front}/v1/dev/token?uid=${uid}`)).json()) as { token: string }).token;
      const clients = [];
      const landed = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const client = await connect(`${front.replace('http', 'ws')}/v1/ws?format=envelope`);
        const auth = await client.request({ op: 'auth', token: await tokenFor(`visitor-${i}`) });
        expect(auth).toMatchObject({ success: true });
        landed.add(`${String(auth.instance)} ${String(auth.region)}`);
        expect(await client.request({ op: 'subscribe', channels: ['room_cluster'] })).toMatchObject({ success: true });
        clients.push(client);
      }
      expect([...landed].sort()).toEqual(['fra-1 fra', 'iad-1 iad', 'syd-1 syd']);

      // An SSE client through the same door: its uplink POSTs land on other instances and are relayed.
      const jwt = await tokenFor('visitor-sse');
      const sse = openSse(`${front}/v1/sse?format=envelope&channel=room_cluster`, { authorization: `Bearer ${jwt}` });
      await sse.session();

      const res = await fetch(`${front}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'room_cluster', d: 'hello, every region' }) });
      expect(res.status).toBe(200);
      for (const client of clients) expect(await client.next(onChannel('room_cluster'))).toMatchObject({ data: 'hello, every region' });
      expect(JSON.parse((await sse.next((e) => e.type === 'message')).data)).toMatchObject({ data: 'hello, every region' });
      sse.close();
      for (const client of clients) client.close();
    } finally {
      // Ctrl-C in a terminal: SIGINT to the whole process group.
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
    }
    await exited;
    // Nothing is left answering: every instance stopped with the script.
    const urls = [...out.matchAll(/\) {2}(http:\/\/\S+)/g)].map((m) => m[1]!);
    expect(urls).toHaveLength(3);
    for (const url of urls) await pollUntil(() => fetch(`${url}/healthz`).then(() => false, () => true), 20_000, `${url} stops`);
  }, 180_000);
});
