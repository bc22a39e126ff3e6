/**
 * Who the server trusts without a key: local programs only. A request proxied from
 * elsewhere, a browser acting for a web page, a rebound DNS name or a form-encoded
 * body are not local callers, for the server API and the demo token endpoint alike.
 */
import { describe, expect, test } from 'bun:test';
import { request } from 'node:http';
import { startTestMesh } from './harness/mesh.ts';

const KEY = 'k'.repeat(32);
// Demo mode (no secret) so /v1/dev/token exists, and no API key: the loopback rules apply.
const open = await startTestMesh({ JWT_SECRET: '' });
const keyed = await startTestMesh({ MESH_API_KEY: KEY });

const FORWARDING: [string, string][] = [
  ['Forwarded', 'for=203.0.113.9'],
  ['X-Forwarded-For', '203.0.113.9'],
  ['X-Real-IP', '203.0.113.9'],
  ['Fly-Client-IP', '203.0.113.9'],
  ['CF-Connecting-IP', '203.0.113.9'],
];

/** An HTTP request with exactly these headers (fetch would not let a test set Host). */
function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const publishTo = (m: typeof open, headers: Record<string, string>, body = '{"c":"room_trust","d":"x"}') =>
  send(`${m.url}/v1/mesh/publish`, 'POST', { 'content-type': 'application/json', ...headers }, body);
const devToken = (headers: Record<string, string>) => send(`${open.url}/v1/dev/token?uid=mallory`, 'GET', headers);

describe('loopback means the caller, not the last hop', () => {
  test('a plain local call is served: publish and dev token', async () => {
    expect((await publishTo(open, {})).status).toBe(200);
    expect((await devToken({})).status).toBe(200);
  });

  for (const [name, value] of FORWARDING) {
    test(`a request carrying ${name} is not local: publish 403, dev token 403`, async () => {
      expect(await publishTo(open, { [name]: value })).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
      expect(await devToken({ [name]: value })).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    });
  }
});

describe('a keyless server API refuses what a web page could make a browser send', () => {
  test('a request with an Origin, or Sec-Fetch-Site cross-site, is refused', async () => {
    expect(await publishTo(open, { origin: 'https://evil.example' })).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    expect(await publishTo(open, { 'sec-fetch-site': 'cross-site' })).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
  });

  test('a body that is not declared JSON (text/plain and forms need no preflight) is refused with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      expect(await publishTo(open, { 'content-type': type })).toMatchObject({ status: 415, body: { code: 'ERR_UNSUPPORTED_MEDIA' } });
    }
    expect((await publishTo(open, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
  });

  test('the demo token is minted for localhost and loopback Host names only (not a rebound DNS name)', async () => {
    const port = open.port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) expect((await devToken({ host })).status).toBe(200);
    expect(await devToken({ host: `attacker.example:${port}` })).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
  });
});

describe('the API key', () => {
  test('the Bearer scheme is case-insensitive', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) expect((await publishTo(keyed, { authorization: `${scheme} ${KEY}` })).status).toBe(200);
    expect((await publishTo(keyed, { authorization: `Basic ${KEY}` })).status).toBe(401);
  });
});
