/** JWT authentication: HS256, JWKS (RS256/ES256), issuer/audience, every refusal, AUTH_URL exchange, expiry. */
import { afterAll, describe, expect, test } from 'bun:test';
import { SignJWT, exportSPKI, importJWK, type CryptoKey } from 'jose';
import { startTestMesh } from './harness/mesh.ts';
import { TEST_SECRET, b64, keyPair, signWith, token } from './harness/tokens.ts';

const rsa = await keyPair('RS256', 'rsa-1');
const ec = await keyPair('ES256', 'ec-1');
const jwks = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => Response.json({ keys: [rsa.publicJwk, ec.publicJwk] }) });
const exchange = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const { token } = (await req.json()) as { token: string };
    if (token === 'opaque-good') return Response.json({ uid: 42 });
    if (token === 'opaque-broken') return new Response('boom', { status: 500 });
    return new Response('no', { status: 401 });
  },
});
afterAll(() => {
  jwks.stop(true);
  exchange.stop(true);
});

const hs = await startTestMesh({ JWT_ISSUER: 'https://app.example', JWT_AUDIENCE: 'pgmesh' });
const asym = await startTestMesh({ JWT_SECRET: '', JWKS_URL: `http://127.0.0.1:${jwks.port}/jwks.json` });
const both = await startTestMesh({ JWKS_URL: `http://127.0.0.1:${jwks.port}/jwks.json` });
const viaWebhook = await startTestMesh({ JWT_SECRET: '', AUTH_URL: `http://127.0.0.1:${exchange.port}/auth` });

const claims = { iss: 'https://app.example', aud: 'pgmesh' };
const now = () => Math.floor(Date.now() / 1000);

async function authReply(mesh: typeof hs, jwt: string) {
  const client = await mesh.connect();
  return { client, reply: await client.request({ op: 'auth', args: [jwt] }) };
}

describe('HS256 with JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE', () => {
  test('a valid token is accepted', async () => {
    const { reply } = await authReply(hs, await token('u1', claims));
    expect(reply).toMatchObject({ op: 'auth', success: true, uid: 'u1' });
  });

  const refusals: [string, () => Promise<string>, number, string][] = [
    ['expired', () => token('u1', { ...claims, exp: now() - 60 }), 3, 'ERR_TOKEN_EXPIRED'],
    ['not yet valid', () => token('u1', { ...claims, nbf: now() + 600 }), 4, 'ERR_TOKEN_NOT_YET_VALID'],
    ['wrongly signed', () => token('u1', claims, 'another-secret-of-32-bytes-length!'), 2, 'ERR_TOKEN_INVALID'],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u1', ...claims, exp: now() + 600 })}.`, 2, 'ERR_TOKEN_INVALID'],
    ['of the wrong issuer', () => token('u1', { ...claims, iss: 'https://evil.example' }), 5, 'ERR_TOKEN_CLAIM'],
    ['for another audience', () => token('u1', { ...claims, aud: 'other' }), 5, 'ERR_TOKEN_CLAIM'],
    ['without a subject', async () => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(TEST_SECRET)), 5, 'ERR_TOKEN_CLAIM'],
    ['not a JWT at all', async () => 'garbage', 2, 'ERR_TOKEN_INVALID'],
    // $-uids are pgmesh's own connections (consoles, Mercure, Pusher members): presence and the limits pass them by.
    ['naming a $-user (as a console is named)', () => token('$console', claims), 5, 'ERR_TOKEN_CLAIM'],
    ['signed with an RSA key the server does not know', () => signWith(rsa, 'u1', claims), 2, 'ERR_TOKEN_INVALID'],
  ];
  for (const [what, make, code, reason] of refusals) {
    test(`a token ${what} is refused with code ${code}, and the socket stays usable`, async () => {
      const { client, reply } = await authReply(hs, await make());
      expect(reply).toMatchObject({ op: 'auth', success: false, code, reason });
      expect(typeof reply.msg).toBe('string');
      expect(reply.error).toBe(reply.msg);
      expect(await client.request({ op: 'subscribe', channel: 'room_1' })).toMatchObject({ success: false, code: 1, msg: 'Not Auth' });
      expect(await client.request({ op: 'auth', args: [await token('u1', claims)] })).toMatchObject({ success: true });
      expect(await client.request({ op: 'subscribe', channel: 'room_1' })).toMatchObject({ success: true });
    });
  }

  test('every op but auth and ping needs an authenticated session', async () => {
    const client = await hs.connect();
    const frames = [
      { op: 'subscribe', args: ['room_1'] },
      { op: 'unsubscribe', args: ['room_1'] },
      { op: 'publish', channel: 'room_1', data: 1 },
      { op: 'sendtoroom', args: ['room_1', 'x'] },
      { op: 'sendtouser', args: ['u2', 'x'] },
      { op: 'sendbroadcast', args: ['x'] },
      { op: 'ack', id: 1 },
    ];
    for (const frame of frames) {
      expect(await client.request(frame)).toMatchObject({ op: frame.op, success: false, code: 1, msg: 'Not Auth', error: 'Not Auth' });
    }
    expect(await client.request({ op: 'ping' })).toEqual({ op: 'pong' });
  });
});

describe('JWKS_URL (RS256 and ES256)', () => {
  test('RS256 and ES256 tokens from the key set are accepted', async () => {
    expect((await authReply(asym, await signWith(rsa, 'r1'))).reply).toMatchObject({ success: true, uid: 'r1' });
    expect((await authReply(asym, await signWith(ec, 'e1'))).reply).toMatchObject({ success: true, uid: 'e1' });
  });

  test('HS256 is refused when only a JWKS is configured', async () => {
    const { reply } = await authReply(asym, await token('h1'));
    expect(reply).toMatchObject({ success: false, code: 2, reason: 'ERR_TOKEN_INVALID' });
  });

  test('algorithm confusion: an HS256 token keyed with the public RSA key is refused', async () => {
    const pem = await exportSPKI((await importJWK(rsa.publicJwk, "RS256")) as CryptoKey);
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const forged = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
        .setSubject('admin')
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(secret));
      for (const mesh of [asym, both]) {
        expect((await authReply(mesh, forged)).reply).toMatchObject({ success: false, code: 2 });
      }
    }
  });

  test('with both a secret and a JWKS, each kind of token verifies against its own key', async () => {
    expect((await authReply(both, await token('h2'))).reply).toMatchObject({ success: true, uid: 'h2' });
    expect((await authReply(both, await signWith(ec, 'e2'))).reply).toMatchObject({ success: true, uid: 'e2' });
  });
});

describe('AUTH_URL token exchange', () => {
  test('an opaque token the webhook accepts authenticates as its uid', async () => {
    expect((await authReply(viaWebhook, 'opaque-good')).reply).toMatchObject({ success: true, uid: '42' });
  });
  test('a token the webhook refuses is invalid', async () => {
    expect((await authReply(viaWebhook, 'opaque-bad')).reply).toMatchObject({ success: false, code: 2, reason: 'ERR_TOKEN_INVALID' });
  });
  test('a failing webhook is reported as unavailable, not as a bad token', async () => {
    expect((await authReply(viaWebhook, 'opaque-broken')).reply).toMatchObject({ success: false, code: 6, reason: 'ERR_AUTH_UNAVAILABLE' });
  });
});

describe('token expiry on a live connection', () => {
  test('a refresh before expiry keeps the socket open; a refresh for another user is refused', async () => {
    // Two seconds ahead of a rounded-up now: never expired before the auth reaches the server.
    const exp = Math.ceil(Date.now() / 1000) + 2;
    const { client } = await authReply(hs, await token('x2', { ...claims, exp }));
    expect(await client.request({ op: 'refresh', token: await token('x3', claims) })).toMatchObject({ success: false, reason: 'ERR_FORBIDDEN' });
    expect(await client.request({ op: 'refresh', token: await token('x2', claims) })).toMatchObject({ op: 'refresh', success: true });
    await client.request({ op: 'subscribe', channel: '@user' });
    // Published only once the first token has expired: arriving proves the socket outlived it.
    setTimeout(() => void hs.publish({ c: 'user:x2', d: 'after expiry' }), exp * 1000 + 500 - Date.now());
    await client.next((f) => f === 'after expiry', 6000);
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });
});

describe('tokens without exp, and connections that never authenticate', () => {
  const noExp = () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('forever').sign(new TextEncoder().encode(TEST_SECRET));

  test('a JWT without exp is refused by default (JWT_REQUIRE_EXP), and accepted where that is switched off', async () => {
    const strict = await startTestMesh();
    expect((await authReply(strict, await noExp())).reply).toMatchObject({ success: false, code: 5, reason: 'ERR_TOKEN_CLAIM' });
    const lenient = await startTestMesh({ JWT_REQUIRE_EXP: 'false' });
    expect((await authReply(lenient, await noExp())).reply).toMatchObject({ success: true, uid: 'forever' });
  });

  test('a socket that does not authenticate within MESH_AUTH_TIMEOUT is closed with 4002; one that does stays open', async () => {
    const quick = await startTestMesh({ MESH_AUTH_TIMEOUT: '300ms' });
    const idle = await quick.connect();
    const authed = await quick.login('in-time');
    expect(await idle.closed).toEqual({ code: 4002, reason: 'not authenticated in time' });
    // Past the timeout, the authenticated socket still answers.
    expect(await authed.request({ op: 'ping' })).toEqual({ op: 'pong' });
    expect(authed.socket.readyState).toBe(WebSocket.OPEN);
  });

  test('a key server that answers garbage is reported as unavailable, not as a bad token', async () => {
    const broken = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('<html>', { status: 502 }) });
    try {
      const viaBroken = await startTestMesh({ JWT_SECRET: '', JWKS_URL: `http://127.0.0.1:${broken.port}/jwks.json` });
      expect((await authReply(viaBroken, await signWith(rsa, 'u1'))).reply).toMatchObject({ success: false, code: 6, reason: 'ERR_AUTH_UNAVAILABLE' });
    } finally {
      broken.stop(true);
    }
  });
});
