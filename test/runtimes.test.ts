/** The same server on node, bun and deno: start it as a real process and do a full round trip on each. */
import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, RUNTIMES, startProcess } from './harness/process.ts';
import { token } from './harness/tokens.ts';
import { connect, onChannel } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';
import { openSse } from './harness/sse-client.ts';

async function sseSessions(url: string): Promise<number> {
  const stats = (await (await fetch(`${url}/v1/mesh/stats`)).json()) as { sessions: { sse: number } };
  return stats.sessions.sse;
}

/** A POST whose body goes in chunks (Transfer-Encoding: chunked, no Content-Length), or with the Content-Length given. */
function rawPost(url: string, chunks: string[], headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    // The server may answer 413 and close before the whole body is sent.
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'EPIPE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe.each(RUNTIMES)('pgmesh on %s', (runtime) => {
  test(
    'auth, subscribe, API publish and client publish round trip; a drain on SIGTERM (1012)',
    async () => {
      const mesh = await startProcess(runtime, { MESH_MAX_MESSAGE: '1k' });
      try {
        const health = await fetch(`${mesh.url}/healthz`);
        expect(await health.json()).toEqual({ ok: true, store: 'pglite', listening: true });
        const ws = mesh.url.replace('http', 'ws');
        const a = await connect(`${ws}/v1/ws`);
        const b = await connect(`${ws}/v1/ws?format=envelope`);
        expect(await a.request({ op: 'auth', args: [await token('1001')] })).toMatchObject({ success: true });
        expect(await b.request({ op: 'auth', token: await token('1002') })).toMatchObject({ success: true });
        expect(await a.request({ op: 'subscribe', channel: '@user' })).toMatchObject({ success: true });
        expect(await b.request({ op: 'subscribe', args: ['room_101'] })).toMatchObject({ success: true });

        const res = await fetch(`${mesh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'user:1001', d: `hello from ${runtime}` }) });
        expect(res.status).toBe(200);
        expect(await a.next((f) => f === `hello from ${runtime}`)).toBe(`hello from ${runtime}`);

        expect(await a.request({ op: 'sendtoroom', args: ['room_101', 'hi room'] })).toMatchObject({ success: true });
        expect(await b.next(onChannel('room_101'))).toMatchObject({ event: 'message', channel: 'room_101', data: 'hi room', uid: '1001' });

        // SSE: a message arrives; closing the EventSource frees the session at once.
        const sse = openSse(`${mesh.url}/v1/sse?channel=room_101&token=${await token('1003')}`);
        await sse.session();
        expect(await sseSessions(mesh.url)).toBe(1);
        await a.request({ op: 'sendtoroom', args: ['room_101', 'over sse'] });
        expect(JSON.parse((await sse.next((e) => e.type === 'message')).data)).toMatchObject({ data: 'over sse' });
        sse.close();
        await pollUntil(async () => (await sseSessions(mesh.url)) === 0, 5000, 'the closed stream leaves the server');

        // Publish bodies are bounded (8 × MESH_MAX_MESSAGE here, 8 KiB) however they are sent: by a
        // declared length before anything is read, in chunks as soon as the count passes the limit.
        const publishUrl = `${mesh.url}/v1/mesh/publish`;
        const message = JSON.stringify({ c: 'room_101', d: 'chunked' });
        expect(await rawPost(publishUrl, [message.slice(0, 10), message.slice(10)])).toMatchObject({ status: 200 });
        expect(await b.next((f) => (f as { data?: unknown }).data === 'chunked')).toMatchObject({ channel: 'room_101', data: 'chunked' });
        const chunked = await rawPost(publishUrl, Array.from({ length: 9 }, () => ' '.repeat(1024)));
        expect(chunked.status).toBe(413);
        expect(JSON.parse(chunked.body)).toMatchObject({ code: 'ERR_TOO_LARGE' });
        const declared = await rawPost(publishUrl, [' '.repeat(9 * 1024)], { 'content-length': String(9 * 1024) });
        expect(declared.status).toBe(413);
        expect(JSON.parse(declared.body)).toMatchObject({ code: 'ERR_TOO_LARGE' });

        // An oversize frame closes with 1009 on every runtime.
        const c = await connect(`${ws}/v1/ws`);
        c.send('x'.repeat(70 * 1024));
        expect((await c.closed).code).toBe(1009);

        const closing = a.closed;
        expect(await mesh.stop('SIGTERM')).toBe(0);
        expect((await closing).code).toBe(1012);
      } finally {
        await mesh.stop('SIGKILL');
      }
    },
    90_000,
  );
});

describe("the README's start commands", () => {
  // Exactly what a person types: npm start, npm run start:bun, deno task start — on the embedded
  // default, a Postgres server pgmesh runs itself in MESH_DATA_DIR and stops with itself.
  const commands: [string, string[]][] = [
    ['npm start', ['npm', 'start', '--silent']],
    ['npm run start:bun', ['npm', 'run', 'start:bun', '--silent']],
    ['deno task start', [join(BIN, 'deno'), 'task', 'start']],
  ];
  for (const [name, line] of commands) {
    test(`${name} serves the demo page, health and a publish on the embedded Postgres, and stops it on SIGTERM`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'pgmesh-start-'));
      const postmaster = join(dataDir, 'postgres', 'postmaster.pid');
      const mesh = await startProcess('node', { MESH_DATA_DIR: dataDir }, 60_000, line);
      try {
        expect(await (await fetch(`${mesh.url}/healthz`)).json()).toMatchObject({ ok: true, store: 'postgres', listening: true });
        expect(await (await fetch(`${mesh.url}/`)).text()).toContain('<title>pgmesh demo</title>');
        const res = await fetch(`${mesh.url}/v1/mesh/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"c":"room_start","d":"x"}' });
        expect(res.status).toBe(200);
        expect(existsSync(postmaster)).toBe(true);
      } finally {
        // npm and deno task run the server as a child: signal the whole group, as a terminal's Ctrl-C would.
        if (mesh.child.pid) process.kill(-mesh.child.pid, 'SIGTERM');
        await mesh.stop('SIGTERM');
      }
      // The embedded server went with it (Postgres removes its pid file as it exits).
      await pollUntil(async () => !existsSync(postmaster), 15_000, 'the embedded Postgres stopped');
    }, 90_000);
  }
});
