/**
 * Calls pgmesh makes to other servers (rpc, webhooks, AUTH_URL) follow no
 * redirect, so a signed body never goes where a backend's answer points, and
 * read answers with a byte cap, so a backend cannot make an instance buffer an
 * answer of any size. Real HTTP servers on loopback play the backends.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { startTestMesh } from './harness/mesh.ts';
import { pollUntil } from './harness/waiter.ts';
import { keyPair, signWith } from './harness/tokens.ts';

const SECRET = 'outbound-secret-0123456789';

/** A loopback HTTP server answering with `handle`; counts its requests. */
async function backend(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    req.resume();
    req.on('end', () => handle(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, hits, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// Where a redirect points: it must never be asked anything.
const elsewhere = await backend((_req, res) => res.end('{"uid":"stolen","result":"from elsewhere"}'));
const rpc = await backend((req, res) => {
  if (req.url === '/redirect') {
    res.writeHead(307, { location: `${elsewhere.url}/steal` }).end();
  } else if (req.url === '/huge') {
    // 4 MB, chunked (no Content-Length): the cap must hold while it streams.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"result":"');
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    const more = () => {
      while (sent < 64) {
        sent++;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end('"}');
    };
    more();
  } else if (req.url === '/deep') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(`{"result":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  } else {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":"fine"}');
  }
});
afterAll(async () => {
  await elsewhere.close();
  await rpc.close();
});

describe('outbound calls', () => {
  test('rpc: a redirect is not followed (the backend it names hears nothing); an answer over 1 MB, or nested too deep, is ERR_RPC_UNAVAILABLE', async () => {
    for (const [path, why] of [
      ['/redirect', 'redirect'],
      ['/huge', 'larger than'],
      ['/deep', 'no usable JSON'],
    ] as const) {
      const mesh = await startTestMesh({ MESH_RPC_URL: `${rpc.url}${path}`, MESH_WEBHOOK_SECRET: SECRET });
      const client = await mesh.login(`rpc-${path.slice(1)}`);
      const reply = await client.request({ op: 'rpc', method: 'm', rid: 1 }, 10_000);
      expect(reply).toMatchObject({ success: false, reason: 'ERR_RPC_UNAVAILABLE' });
      expect(String(reply.error)).toContain(why);
      expect(await client.request({ op: 'ping' })).toEqual({ op: 'pong' });
    }
    expect(elsewhere.hits).toEqual([]);
  });

  test('webhooks: a 307 counts as a failed delivery (retried later), and the signed batch never reaches where it points', async () => {
    const hook = await backend((_req, res) => res.writeHead(307, { location: `${elsewhere.url}/hook` }).end());
    try {
      const mesh = await startTestMesh({ MESH_WEBHOOK_URL: `${hook.url}/hook`, MESH_WEBHOOK_SECRET: SECRET });
      await mesh.login('hooked');
      await pollUntil(async () => ((await (await fetch(`${mesh.url}/v1/mesh/stats`)).json()) as { webhooks: { failures: number } }).webhooks.failures > 0, 10_000, 'a failed webhook delivery');
      expect(hook.hits.length).toBeGreaterThan(0);
      expect(elsewhere.hits).toEqual([]);
    } finally {
      await hook.close();
    }
  });

  test('AUTH_URL: a redirect answer is ERR_AUTH_UNAVAILABLE, never the redirected server\'s "uid"', async () => {
    const auth = await backend((_req, res) => res.writeHead(302, { location: `${elsewhere.url}/auth` }).end());
    try {
      const mesh = await startTestMesh({ AUTH_URL: `${auth.url}/auth`, JWT_SECRET: '' });
      const client = await mesh.connect();
      expect(await client.request({ op: 'auth', token: 'opaque-session-token' })).toMatchObject({ success: false, reason: 'ERR_AUTH_UNAVAILABLE' });
      expect(elsewhere.hits).toEqual([]);
    } finally {
      await auth.close();
    }
  });

  test('JWKS_URL: a key set behind a redirect, over 256 KB, or nested too deep is not used: ERR_AUTH_UNAVAILABLE, and the redirect target hears nothing', async () => {
    const pair = await keyPair('RS256', 'k1');
    const keys = await backend((req, res) => {
      if (req.url === '/redirect') return void res.writeHead(302, { location: `${elsewhere.url}/jwks` }).end();
      const padding = req.url === '/huge' ? { padding: 'x'.repeat(300 * 1024) } : req.url === '/deep' ? { padding: JSON.parse('['.repeat(100) + ']'.repeat(100)) } : {};
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [pair.publicJwk], ...padding }));
    });
    try {
      const jwt = await signWith(pair, 'jwks-user');
      for (const path of ['/redirect', '/huge', '/deep']) {
        const mesh = await startTestMesh({ JWT_SECRET: '', JWKS_URL: `${keys.url}${path}` });
        const client = await mesh.connect();
        expect(await client.request({ op: 'auth', token: jwt })).toMatchObject({ success: false, reason: 'ERR_AUTH_UNAVAILABLE' });
      }
      // The same key set, plainly served, verifies the same token.
      const plain = await startTestMesh({ JWT_SECRET: '', JWKS_URL: `${keys.url}/plain` });
      const client = await plain.connect();
      expect(await client.request({ op: 'auth', token: jwt })).toMatchObject({ success: true, uid: 'jwks-user' });
      expect(elsewhere.hits).toEqual([]);
    } finally {
      await keys.close();
    }
  }, 30_000);
});
