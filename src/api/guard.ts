/**
 * Who may call the server API: holders of MESH_API_KEY (as a Bearer token), or,
 * with no key configured, only callers on this machine's loopback.
 */
import type { MiddlewareHandler } from 'hono';
import { MeshError } from '../core/errors.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';

/** True for 127.0.0.0/8 and ::1, plain or IPv4-mapped. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.replace(/^::ffff:/i, '');
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** Middleware that admits server-API callers. */
export function serverApiGuard(apiKey: string | undefined, runtime: RuntimeAdapter): MiddlewareHandler {
  const expected = apiKey === undefined ? undefined : new TextEncoder().encode(apiKey);
  return async (c, next) => {
    if (expected === undefined) {
      if (!isLoopback(runtime.remoteAddress(c))) {
        throw new MeshError('ERR_FORBIDDEN', 'the server API answers loopback callers only until MESH_API_KEY is set');
      }
      return next();
    }
    const header = c.req.header('authorization') ?? '';
    const given = header.startsWith('Bearer ') ? new TextEncoder().encode(header.slice(7).trim()) : undefined;
    if (given === undefined || !sameBytes(given, expected)) throw new MeshError('ERR_BAD_API_KEY');
    return next();
  };
}

// Constant-time for equal lengths, so the key cannot be guessed byte by byte from timings.
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
