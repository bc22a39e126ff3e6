/**
 * A Mercure update: read from a publisher's form, kept in the outbox as a message
 * on the reserved channel `$mercure` (one ordered stream for every topic, which is
 * what makes `Last-Event-ID` resume exact across instances), and written to
 * subscribers as one SSE event. Its id is the publisher's own when it gave one,
 * else `#<message id>` (a fragment, as the protocol suggests for a hub's sequence).
 */
import { z } from 'zod';
import type { Message } from '../core/message.ts';
import { MercureError } from './errors.ts';
import { hasForbiddenCharacter, MAX_MATCHER_LENGTH } from './topic-matcher.ts';

/** The channel every Mercure update is stored on. */
export const MERCURE_CHANNEL = '$mercure';
/** Most `topic` fields one update may carry. */
export const MAX_TOPICS = 100;

/** An update as stored: short keys, for it is read once per update by every instance. */
export const StoredUpdate = z.object({
  /** Topics, the canonical one first. */
  t: z.array(z.string()).min(1),
  d: z.string(),
  /** The publisher's id, if it gave one. */
  i: z.string().optional(),
  /** The SSE event type. */
  e: z.string().optional(),
  /** The SSE retry, in ms. */
  r: z.number().int().nonnegative().optional(),
  /** Private: only subscribers whose token grants one of its topics get it. */
  p: z.literal(1).optional(),
});
export type StoredUpdate = z.infer<typeof StoredUpdate>;

/** Reads a publish form into an update; throws MercureError (400, 413) for what the protocol refuses. */
export function updateFromForm(form: URLSearchParams, hubUrl: string): StoredUpdate {
  const topics = form.getAll('topic');
  if (topics.length === 0) throw MercureError.badRequest('an update needs at least one "topic"');
  if (topics.length > MAX_TOPICS) throw new MercureError(413, `at most ${MAX_TOPICS} topics per update`);
  for (const topic of topics) {
    if (topic === '' || topic.length > MAX_MATCHER_LENGTH) throw MercureError.badRequest(`a topic is 1 to ${MAX_MATCHER_LENGTH} characters`);
    if (hasForbiddenCharacter(topic)) throw MercureError.badRequest('a topic holds a control or format character');
    if (topic === '*') throw MercureError.badRequest('"*" is the wildcard, not a topic');
    if (inHubNamespace(topic, hubUrl)) throw MercureError.badRequest("a topic under the hub's own URL is reserved for the hub");
  }
  const data = form.get('data') ?? '';
  if (!data.isWellFormed() || data.includes('\u0000')) throw MercureError.badRequest('"data" must be text without NUL characters');
  const update: StoredUpdate = { t: topics, d: data };
  const id = form.get('id');
  if (id !== null && id !== '') {
    if (id.startsWith('#') || id === 'earliest' || hasForbiddenCharacter(id) || id.length > MAX_MATCHER_LENGTH) {
      throw MercureError.badRequest('"id" must not start with #, be "earliest" or hold control characters');
    }
    update.i = id;
  }
  const type = form.get('type');
  if (type !== null && type !== '') {
    if (hasForbiddenCharacter(type) || type.length > 256) throw MercureError.badRequest('"type" must not hold control characters');
    if (type === 'mercure') throw MercureError.badRequest('the event type "mercure" is reserved for the hub');
    update.e = type;
  }
  const retry = form.get('retry');
  if (retry !== null && retry !== '') {
    if (!/^\d{1,9}$/.test(retry)) throw MercureError.badRequest('"retry" must be digits');
    update.r = Number(retry);
  }
  if (form.has('private')) update.p = 1;
  return update;
}

/** The id subscribers see for the update stored as message `id`. */
export function eventId(update: StoredUpdate, id: number): string {
  return update.i ?? `#${id}`;
}

// Keys of the per-message caches: the update parsed once, its SSE bytes encoded once, for every stream.
const UPDATE = {};
const EVENT = {};
const encoder = new TextEncoder();

/** The update a `$mercure` message carries (parsed once per message); null for one that is not an update. */
export function updateOf(message: Message): StoredUpdate | null {
  return message.memo(UPDATE, (m) => {
    try {
      const parsed = StoredUpdate.safeParse(JSON.parse(m.data));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  });
}

/** The update as one SSE event's bytes (encoded once per message). */
export function updateEvent(message: Message, update: StoredUpdate): Uint8Array {
  return message.memo(EVENT, (m) => {
    let text = `id: ${eventId(update, m.id)}\n`;
    if (update.e !== undefined) text += `event: ${update.e}\n`;
    if (update.r !== undefined) text += `retry: ${update.r}\n`;
    for (const line of update.d.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
    return encoder.encode(`${text}\n`);
  });
}

const CHANNEL_EVENT = {};

/** A pgmesh channel's message as a Mercure event: its data, under the hub's id for it (encoded once per message). */
export function channelEvent(message: Message): Uint8Array {
  return message.memo(CHANNEL_EVENT, (m) => {
    let text = `id: #${m.id}\n`;
    for (const line of m.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
    return encoder.encode(`${text}\n`);
  });
}

/** Whether a topic, resolved against the hub's URL, names the hub's own path or one under it. */
function inHubNamespace(topic: string, hubUrl: string): boolean {
  let path: string;
  try {
    // The URL parser removes dot segments; unreserved characters someone %-encoded are decoded before comparing.
    path = new URL(topic, hubUrl).pathname.replace(/%(2[DEde]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])/g, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)));
  } catch {
    return false;
  }
  const hubPath = new URL(hubUrl).pathname;
  return path === hubPath || path.startsWith(`${hubPath}/`);
}
