/**
 * Calls pgmesh makes to other servers (webhooks, rpc, AUTH_URL, JWKS). A
 * redirect is never followed: it would re-send a signed body, and its
 * signature, to wherever the answer points, and hand the client that host's
 * answer. An answer is read with a byte cap while it streams, so a backend
 * cannot make an instance buffer gigabytes.
 */
import { boundedText } from './request-body.ts';

/** Thrown for an answer that was a redirect (3xx), which is not followed. */
export class RedirectRefused extends Error {
  override name = 'RedirectRefused';
  constructor(readonly status: number) {
    super(`answered with a redirect (HTTP ${status}), which pgmesh does not follow`);
  }
}

/** An answer, read. */
export interface Answer {
  status: number;
  ok: boolean;
  headers: Headers;
  text: string;
}

/**
 * Sends a request and reads its answer up to `maxBytes` (ERR_TOO_LARGE past it); throws
 * RedirectRefused for a 3xx, and whatever fetch throws (a TimeoutError for the signal's timeout).
 */
export async function callOut(url: string | URL, init: RequestInit, maxBytes: number): Promise<Answer> {
  const response = await fetch(url, { ...init, redirect: 'manual' });
  // `manual` gives the 3xx itself (an opaque redirect, status 0, where the runtime hides it).
  if (response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)) {
    await response.body?.cancel().catch(() => {});
    throw new RedirectRefused(response.status);
  }
  const text = await boundedText(response, maxBytes, 'the answer');
  return { status: response.status, ok: response.ok, headers: response.headers, text };
}
