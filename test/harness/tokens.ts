/** Test tokens: HS256 with the test secret, and RS256/ES256 key pairs served as a JWKS. */
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export const TEST_SECRET = 'test-secret-of-at-least-32-bytes!!';

/** An HS256 token for `sub`, valid for an hour unless claims say otherwise. */
export function token(sub: string, claims: Record<string, unknown> = {}, secret = TEST_SECRET): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime((claims.exp as number | undefined) ?? '1h')
    .sign(new TextEncoder().encode(secret));
}

/** Base64url of a JSON value, for hand-built (malicious) tokens. */
export function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export interface KeyPair {
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** A fresh signing key pair with its public half as a JWK. */
export async function keyPair(alg: 'RS256' | 'ES256', kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicJwk };
}

/** A token signed with an asymmetric key pair. */
export function signWith(pair: KeyPair, sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: pair.alg, kid: pair.kid })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(pair.privateKey);
}
