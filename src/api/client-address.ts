/**
 * The address of the client behind a request, for logs and limits. Behind Fly's
 * proxy it is Fly-Client-IP (the proxy sets it; nothing else reaches a machine's
 * public port). Behind a proxy of your own it is the last X-Forwarded-For entry
 * that is not one of MESH_TRUSTED_PROXIES, and only when the peer itself is one of
 * them: anyone can send that header, so from anyone else it means nothing.
 * Otherwise it is the peer.
 */
import type { Context } from 'hono';
import type { RuntimeAdapter } from '../runtime/adapter.ts';

/** Finds the client address of a request. */
export type ClientAddress = (c: Context) => string | undefined;

/** The rule for this deployment: on Fly (`onFly`) or behind the listed proxies (addresses or CIDR ranges). */
export function clientAddressOf(runtime: RuntimeAdapter, options: { onFly: boolean; trustedProxies: readonly string[] }): ClientAddress {
  const trusted = options.trustedProxies.map(parseRange);
  const isTrusted = (address: string) => {
    const bytes = parseAddress(address);
    return bytes !== null && trusted.some((range) => range !== null && inRange(bytes, range));
  };
  return (c) => {
    const peer = runtime.remoteAddress(c);
    if (options.onFly) {
      const fly = c.req.header('fly-client-ip')?.trim();
      if (fly && parseAddress(fly) !== null) return fly;
    }
    if (peer === undefined || trusted.length === 0 || !isTrusted(peer)) return peer;
    const hops = (c.req.header('x-forwarded-for') ?? '').split(',').map((hop) => hop.trim()).filter((hop) => hop !== '');
    // Walk back from the nearest hop: the first one we do not trust is the client.
    // A hop that is no address (a forged header's junk) ends the walk: the last trusted hop before it is what we know.
    let known = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      if (parseAddress(hops[i]!) === null) return known;
      if (!isTrusted(hops[i]!)) return hops[i];
      known = hops[i]!;
    }
    return known;
  };
}

interface Range {
  bytes: Uint8Array;
  bits: number;
}

/** Whether `text` is an IP address or a CIDR range (for settings). */
export function isAddressRange(text: string): boolean {
  return parseRange(text) !== null;
}

function parseRange(text: string): Range | null {
  const [address, bits] = text.trim().split('/');
  const bytes = parseAddress(address ?? '');
  if (bytes === null) return null;
  const prefix = bits === undefined ? bytes.length * 8 : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) return null;
  return { bytes, bits: prefix };
}

function inRange(address: Uint8Array, range: Range): boolean {
  if (address.length !== range.bytes.length) return false;
  for (let bit = 0; bit < range.bits; bit += 8) {
    const mask = range.bits - bit >= 8 ? 0xff : (0xff << (8 - (range.bits - bit))) & 0xff;
    if ((address[bit / 8]! & mask) !== (range.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}

/** IPv4 as 4 bytes, IPv6 as 16 (an IPv4-mapped IPv6 address as its IPv4), or null. */
function parseAddress(text: string): Uint8Array | null {
  const plain = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return parseAddress(mapped[1]!);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(plain)) {
    const parts = plain.split('.').map(Number);
    return parts.every((p) => p <= 255) ? Uint8Array.from(parts) : null;
  }
  if (!plain.includes(':') || !/^[0-9a-f:]+$/i.test(plain)) return null;
  const [head, tail, extra] = plain.split('::');
  if (extra !== undefined) return null;
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  if (groups.some((g) => g.length === 0 || g.length > 4)) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  return bytes;
}
