/**
 * An SSE uplink POST that lands on an instance other than the one holding its
 * stream (a round-robin balancer, Fly's proxy): the session id names the owner
 * (`<instance>.<…>`). On Fly the answer is `fly-replay: instance=<owner>` and
 * the proxy replays the POST there; elsewhere the POST is relayed to the
 * owner's advertised URL and its answer passed back. Either way the client sees
 * one normal answer, and a request is never passed on twice.
 */
import type { Context } from 'hono';
import { MeshError } from '../core/errors.ts';
import { boundedText } from '../core/request-body.ts';
import { errorResponse } from '../api/errors.ts';
import { isConnectionId } from '../core/session.ts';

export interface UplinkRelay {
  /** This instance's id. */
  instance: string;
  /** Running on Fly (FLY_MACHINE_ID): hand the POST to Fly's proxy with fly-replay. */
  onFly: boolean;
  /** Where a live instance can be reached, or null. */
  ownerUrl(instance: string): Promise<string | null>;
}

/** Marks a relayed request (the value names the relaying instance): it is never relayed again. */
const RELAYED_BY = 'x-pgmesh-relayed-by';
const RELAY_TIMEOUT_MS = 10_000;

/** The instance a connection id names, or null for an id of no instance. */
export function ownerOf(session: string): string | null {
  const dot = session.lastIndexOf('.');
  return dot > 0 ? session.slice(0, dot) : null;
}

/** The owner's answer to a POST for a session held elsewhere; null when there is no owner to pass it to. */
export async function relayUplink(c: Context, relay: UplinkRelay, session: string, maxBytes: number): Promise<Response | null> {
  // The owner goes into a header (fly-replay) and a URL: only ids of the shape pgmesh gives out.
  const owner = isConnectionId(session) ? ownerOf(session) : null;
  if (owner === null || owner === relay.instance) return null;
  if (c.req.header(RELAYED_BY) !== undefined || c.req.header('fly-replay-src') !== undefined) return null;
  if (relay.onFly) {
    const gone = new MeshError('ERR_NOT_FOUND', `session ${session} lives on ${owner}: replayed there by Fly's proxy`);
    return errorResponse(c, gone, { 'fly-replay': `instance=${owner}` });
  }
  const url = await relay.ownerUrl(owner);
  if (url === null) return null;
  const body = await boundedText(c.req.raw, maxBytes);
  const headers: Record<string, string> = { 'content-type': c.req.header('content-type') ?? 'application/json', [RELAYED_BY]: relay.instance };
  for (const name of ['authorization', 'cookie']) {
    const value = c.req.header(name);
    if (value !== undefined) headers[name] = value;
  }
  let answer: Response;
  try {
    answer = await fetch(`${url}/v1/sse/${encodeURIComponent(session)}${new URL(c.req.url).search}`, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(RELAY_TIMEOUT_MS),
      redirect: 'manual',
    });
  } catch (err) {
    throw new MeshError('ERR_UNAVAILABLE', `the instance holding this stream (${owner}) did not answer`, { cause: err });
  }
  return new Response(await answer.text(), { status: answer.status, headers: { 'content-type': answer.headers.get('content-type') ?? 'application/json' } });
}
