/**
 * Taking Mercure updates away from the hub's main loop: what the publish thread
 * (MESH_PUBLISH_PORT) needs, as plain data that crosses to a worker, and the
 * publish routes it builds from it.
 */
import type { Hono } from 'hono';
import { remoteKeySet } from '../core/auth.ts';
import type { MessageLog } from '../core/message-log.ts';
import type { Config } from '../config.ts';
import { MercureGrants, type KeySource } from './grants.ts';
import { mercurePublishRoutes } from './publish-route.ts';

/**
 * What the publish thread (MESH_PUBLISH_PORT) needs to take Mercure updates, as plain data (it
 * crosses to a worker): the publishers' key and the hub's identity and limits.
 */
export interface MercurePublishSettings {
  key?: string;
  alg: string;
  jwksUrl?: string;
  versions: ('1' | '0')[];
  issuers: string[];
  publicUrl: string;
  audience?: string;
  corsOrigins: string[];
  maxBody: number;
  maxJsonDepth: number;
}

/**
 * The publish thread's Mercure settings, or null where it takes no updates: no hub, or no
 * MERCURE_PUBLIC_URL (relative topics and a 1.0 token's audience are the hub's public URL, which a
 * request to a private port does not tell).
 */
export function mercurePublishSettings(config: Config): MercurePublishSettings | null {
  if ((config.MERCURE_PUBLISHER_JWT_KEY === undefined && config.MERCURE_PUBLISHER_JWKS_URL === undefined) || config.MERCURE_PUBLIC_URL === undefined) return null;
  return {
    key: config.MERCURE_PUBLISHER_JWT_KEY,
    alg: config.MERCURE_PUBLISHER_JWT_ALG,
    jwksUrl: config.MERCURE_PUBLISHER_JWKS_URL,
    versions: [...config.MERCURE_VERSIONS],
    issuers: [...config.MERCURE_ISSUERS],
    publicUrl: config.MERCURE_PUBLIC_URL,
    audience: config.MERCURE_AUDIENCE,
    corsOrigins: [...config.MERCURE_CORS_ORIGINS],
    maxBody: updateBodyLimit(config.MESH_MAX_MESSAGE),
    maxJsonDepth: config.MESH_MAX_JSON_DEPTH,
  };
}

/** The publish routes from such settings, to mount at MERCURE_PATH (in the publish thread). */
export function mercurePublishing(settings: MercurePublishSettings, log: Pick<MessageLog, 'publish'>, onRefused: (why: string) => void): Hono {
  const publisher = keySource(settings.key, settings.alg, settings.jwksUrl, settings.maxJsonDepth)!;
  const versions = new Set(settings.versions);
  // The subscriber key is never asked for here: no one subscribes on the publish port.
  const grants = new MercureGrants({ publisher, subscriber: publisher, versions, issuers: settings.issuers, onRefused });
  return mercurePublishRoutes(log, { grants, versions, publicUrl: settings.publicUrl, audience: settings.audience, corsOrigins: settings.corsOrigins, maxBody: settings.maxBody });
}

/** An update's form carries its data and a little more: topics, id, type. */
export function updateBodyLimit(maxMessage: number): number {
  return maxMessage + 64 * 1024;
}

/** Where a role's tokens are checked: a secret or PEM key, else a JWKS; null: neither set. */
export function keySource(key: string | undefined, alg: string, jwksUrl: string | undefined, maxJsonDepth: number): KeySource | null {
  if (key !== undefined) return alg.startsWith('HS') ? { secret: key, alg } : { pem: key.replaceAll('\\n', '\n'), alg };
  if (jwksUrl !== undefined) return { keySet: remoteKeySet(jwksUrl, maxJsonDepth) };
  return null;
}
