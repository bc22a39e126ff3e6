/**
 * The signature on every request pgmesh sends a backend (webhooks, RPC), in
 * Stripe's scheme: `Pgmesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>" with the shared secret>`. The time inside the signed text lets a
 * receiver refuse an old request replayed.
 */
import { Buffer } from 'node:buffer';
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'pgmesh-signature';
/** How old a signature a receiver should still accept, by default. */
export const SIGNATURE_TOLERANCE_S = 300;

/** The header value signing `body` at `now` (ms). */
export function sign(secret: string, body: string, now = Date.now()): string {
  const t = Math.floor(now / 1000);
  return `t=${t},v1=${hmac(secret, `${t}.${body}`)}`;
}

/** Why a signature was refused, or null when it is good. */
export function checkSignature(secret: string, body: string, header: string | null | undefined, now = Date.now(), toleranceS = SIGNATURE_TOLERANCE_S): 'missing' | 'malformed' | 'stale' | 'mismatch' | null {
  if (!header) return 'missing';
  const parts = new Map(header.split(',').map((part) => part.trim().split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const given = parts.get('v1');
  if (!Number.isInteger(t) || given === undefined || !/^[0-9a-f]{64}$/.test(given)) return 'malformed';
  if (Math.abs(now / 1000 - t) > toleranceS) return 'stale';
  const expected = Buffer.from(hmac(secret, `${t}.${body}`), 'hex');
  return timingSafeEqual(expected, Buffer.from(given, 'hex')) ? null : 'mismatch';
}

function hmac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}
