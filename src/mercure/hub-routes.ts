/**
 * The Mercure hub at /.well-known/mercure: POST publishes an update, GET opens a
 * subscriber's event stream. Both protocol generations are spoken on the same
 * endpoint: 1.0 (`match`, `match_exact`, `match_urlpattern`; at+jwt tokens in the
 * Authorization header or the `__Secure-mercure_access_token` cookie) and 0.x
 * (`topic` selectors as URI templates; `mercure` claims; the `mercureAuthorization`
 * cookie or `authorization` query parameter). A subscriber is a pgmesh session
 * following the `$mercure` channel, so updates reach it from any instance, in
 * order, and a reconnect resumes after its Last-Event-ID exactly.
 */
import { Hono, type Context } from 'hono';
import type { Gateway } from '../core/gateway.ts';
import type { Message } from '../core/message.ts';
import type { MessageLog } from '../core/message-log.ts';
import type { SessionSink } from '../core/session.ts';
import type { ClientAddress } from '../api/client-address.ts';
import type { RuntimeAdapter } from '../runtime/adapter.ts';
import { EventStreamSink, Heartbeat } from '../transport/event-stream.ts';
import { MercureError } from './errors.ts';
import { mayRead, type MercureGrant } from './grants.ts';
import { mercurePublishRoutes, type MercurePublishOptions } from './publish-route.ts';
import { corsHeaders, HUB_PATH, hubOf, mercureErrorHandler, tokenOf } from './request.ts';
import { hasForbiddenCharacter, MAX_MATCHER_LENGTH, topicMatcher, type TopicMatcher } from './topic-matcher.ts';
import { channelEvent, MERCURE_CHANNEL, updateEvent, updateOf } from './update.ts';
import { subscriberInfo, subscriptionDocument, subscriptionsQuery, subscriptionUpdates, type SubscriberInfo } from './subscriptions.ts';
import { canonicalChannel, USER_PREFIX } from '../core/channels.ts';

/** The hub's settings: publishing's (grants, CORS origins, versions, public URL, audience, body limit), and the subscribers'. */
export interface MercureOptions extends MercurePublishOptions {
  /** Subscribers without a token get the public updates (MERCURE_ANONYMOUS). */
  anonymous: boolean;
  heartbeatMs: number;
  /** The reconnection time EventSource is told, in ms. */
  retryMs: number;
  /** Where an update's custom id is found back, for a Last-Event-ID that carries one. */
  findEventId: (id: string) => Promise<number | null>;
  /** Every live subscriber in the cluster, as its presence row describes it (the subscriptions API). */
  subscribers: () => Promise<SubscriberInfo[]>;
  clientAddress?: ClientAddress;
  /** Told of a failure nothing waits for (a subscription's end not announced). */
  onError?: (err: unknown) => void;
}

/** Most matchers one subscriber may send. */
const MAX_MATCHERS = 100;
const encoder = new TextEncoder();
const PING = encoder.encode(':\n\n');

/** One subscriber's event stream: its matchers, its grant, and the session it is. */
class MercureStream extends EventStreamSink implements SessionSink {
  readonly #exact: Set<string>;
  readonly #patterns: TopicMatcher[];

  constructor(
    readonly matchers: TopicMatcher[],
    readonly grant: MercureGrant | null,
    streams: Set<EventStreamSink>,
    gateway: Gateway,
    runtime: RuntimeAdapter,
    request: Request,
  ) {
    super(streams, gateway, runtime, request);
    // Literal matchers are looked up, not tried one by one: a subscriber to many topics costs one lookup per topic.
    this.#exact = new Set(matchers.filter((m) => m.literal).map((m) => m.value));
    this.#patterns = matchers.filter((m) => !m.literal);
  }

  message(message: Message): void {
    if (this.done) return;
    // A pgmesh channel this subscriber follows (an exact matcher its token grants): the message as it was published.
    if (message.channel !== MERCURE_CHANNEL) return this.out.write(channelEvent(message));
    const update = updateOf(message);
    if (update === null || !update.t.some((topic) => this.#exact.has(topic) || this.#patterns.some((m) => m.matches(topic)))) return;
    if (update.p === 1 && !mayRead(this.grant, update.t)) return;
    this.out.write(updateEvent(message, update));
  }

  reply(): void {}
  notice(): void {}

  close(): void {
    this.finish();
    this.out.close();
  }
}

/** The routes, to mount at /.well-known/mercure. */
export function mercureRoutes(gateway: Gateway, log: MessageLog, runtime: RuntimeAdapter, options: MercureOptions): Hono {
  const app = new Hono();
  const heartbeat = new Heartbeat(options.heartbeatMs, PING);

  app.onError(mercureErrorHandler(options.corsOrigins));
  app.route('/', mercurePublishRoutes(log, options));

  app.get('/', async (c) => {
    const hub = hubOf(c, options);
    const matchers = matchersOf(new URL(c.req.url).searchParams, options.versions, hub.hubUrl);
    const token = tokenOf(c, options.versions);
    const grant = token === undefined ? null : await options.grants.verify(token, 'subscriber', hub);
    if (grant === null && !options.anonymous) throw MercureError.noToken('subscribing needs an access token on this hub');
    const asked = c.req.header('last-event-id') ?? c.req.query('last_event_id') ?? c.req.query('lastEventID') ?? c.req.query('lastEventId');
    const { after, anchor } = asked === undefined ? { after: undefined, anchor: undefined } : await resumeFrom(asked, log, options.findEventId);

    const info = subscriberInfo(matchers, grant);
    const sink = new MercureStream(matchers, grant, heartbeat.streams, gateway, runtime, c.req.raw);
    const identity = { uid: `$mercure:${grant?.subject ?? 'anonymous'}`, subscribe: [], publish: [], expiresAt: grant?.expiresAt ?? null };
    const session = (sink.session = gateway.open(sink, { format: 'raw', ackMode: false, transport: 'sse', address: options.clientAddress?.(c), identity }));
    try {
      gateway.identify(session, identity);
      // A token's expiry ends its stream: the browser reconnects, with a fresh cookie if the app set one.
      if (identity.expiresAt !== null) session.setTimer('expiry', Math.max(0, identity.expiresAt - Date.now()));
      // With the updates that end it, which the database publishes if this instance dies first.
      await gateway.follow(session, MERCURE_CHANNEL, after, JSON.stringify({ ...info, ended: subscriptionUpdates(HUB_PATH, info, false) }));
      for (const channel of meetingChannels(matchers, grant)) await gateway.follow(session, channel, after);
      // Written to presence first (the subscriptions API of any instance lists it from here on), then announced;
      // its end is announced after its start, even when the subscriber leaves while the start is being published.
      await gateway.settled();
      const started = announce(info, true);
      sink.onEnd = () => void started.then(() => announce(info, false)).catch((err) => options.onError?.(err));
      await started;
    } catch (err) {
      sink.finish();
      throw err;
    }
    // Bytes at once: some runtimes send the headers with the first chunk only, and EventSource opens on them.
    sink.out.write(encoder.encode(`retry: ${options.retryMs}\n\n`));
    sink.out.handedOver();
    heartbeat.add(sink);
    runtime.keepOpen(c);
    const headers: Record<string, string> = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', ...corsHeaders(c, options.corsOrigins) };
    // Where the replay started from (1.0's field, and the 0.x hubs' Last-Event-ID): a subscriber compares it to what it asked for to see a gap.
    if (anchor !== undefined) headers['mercure-last-event-id'] = headers['last-event-id'] = anchor;
    return new Response(sink.out.body, { headers });
  });

  app.get('/subscriptions', (c) => subscriptionsApi(c, []));
  app.get('/subscriptions/*', (c) => {
    const rest = new URL(c.req.url).pathname.split('/subscriptions/')[1] ?? '';
    return subscriptionsApi(c, rest.split('/').filter((s) => s !== ''));
  });

  /** Publishes, as private updates of type `mercure`, that a subscriber's subscriptions began or ended. */
  async function announce(info: SubscriberInfo, active: boolean): Promise<void> {
    const updates = subscriptionUpdates(HUB_PATH, info, active).map((data) => ({ channel: MERCURE_CHANNEL, data, sender: null }));
    if (updates.length > 0) await log.publish(updates);
  }

  /** The subscriptions API: a collection, a matcher's collection, or one subscription, for a token that grants the path as a topic. */
  async function subscriptionsApi(c: Context, segments: string[]): Promise<Response> {
    const hub = hubOf(c, options);
    const token = tokenOf(c, options.versions);
    if (token === undefined) throw MercureError.noToken('the subscriptions API needs an access token');
    const grant = await options.grants.verify(token, 'subscriber', hub);
    const path = new URL(c.req.url).pathname;
    if (!mayRead(grant, [path])) throw MercureError.insufficientScope('the token does not grant subscribe on this path');
    let query;
    try {
      query = subscriptionsQuery(segments.map((s) => decodeURIComponent(s)));
    } catch {
      query = null;
    }
    if (query === null) throw new MercureError(404, 'no such subscriptions path');
    const documents = (await options.subscribers()).flatMap((info) =>
      info.subscriptions
        .filter((entry) => (query.type === undefined || entry.type === query.type) && (query.match === undefined || entry.match === query.match) && (query.subscriber === undefined || info.subscriber === query.subscriber))
        .map((entry) => subscriptionDocument(HUB_PATH, entry, info.subscriber, true)),
    );
    const position = log.position;
    const cursor = position > 0 ? `#${position}` : 'earliest';
    const headers = {
      'content-type': 'application/json',
      link: `<${hub.hubUrl}>; rel="mercure"; last-event-id="${cursor}"; type="mercure"; content-type="application/json"`,
      'cache-control': 'must-revalidate',
      ...corsHeaders(c, options.corsOrigins),
    };
    if (query.subscriber !== undefined) {
      if (documents.length === 0) throw new MercureError(404, 'no such subscription');
      return new Response(JSON.stringify(documents[0]), { headers });
    }
    // A 0.x client (its token is 0.x's) gets 0.x's JSON-LD collection.
    const collection = grant.version === '0'
      ? { '@context': 'https://mercure.rocks/', id: path, type: 'Subscriptions', lastEventID: cursor, subscriptions: documents }
      : { id: path, type: 'subscriptions', subscriptions: documents };
    return new Response(JSON.stringify(collection), { headers });
  }

  return app;
}

/**
 * The pgmesh channels a subscriber hears beside Mercure's updates: those its exact matchers name
 * and its token grants (a pgmesh channel's messages are for authenticated users, so to Mercure they
 * are private updates). A user's own channel (user:…) never: it is that user's alone.
 */
function meetingChannels(matchers: TopicMatcher[], grant: MercureGrant | null): string[] {
  if (grant === null) return [];
  const channels = new Set<string>();
  for (const m of matchers) {
    if (!m.literal || !mayRead(grant, [m.value])) continue;
    let channel: string;
    try {
      channel = canonicalChannel(m.value);
    } catch {
      continue; // not a name a pgmesh channel can have
    }
    if (!channel.startsWith(USER_PREFIX)) channels.add(channel);
  }
  return [...channels];
}

/** The subscriber's matchers, from the query: 1.0's match parameters and 0.x's topic selectors. */
function matchersOf(query: URLSearchParams, versions: ReadonlySet<'1' | '0'>, hubUrl: string): TopicMatcher[] {
  const matchers: TopicMatcher[] = [];
  for (const [name, value] of query) {
    let type: TopicMatcher['type'] | undefined;
    if (name === 'match' || name === 'match_exact') type = 'exact';
    else if (name === 'match_urlpattern') type = 'urlpattern';
    else if (/^match/i.test(name)) throw MercureError.badRequest(`unknown matcher parameter ${name.slice(0, 64)}: this hub knows match, match_exact and match_urlpattern`);
    else if (name === 'topic' && versions.has('0')) type = 'uritemplate';
    if (type === undefined) continue;
    if (type !== 'uritemplate' && !versions.has('1')) throw MercureError.badRequest('Mercure 1.0 matchers are off on this hub (MERCURE_VERSIONS)');
    if (matchers.length >= MAX_MATCHERS) throw MercureError.badRequest(`at most ${MAX_MATCHERS} topic matchers`);
    matchers.push(topicMatcher(type, value, hubUrl));
  }
  if (matchers.length === 0) throw MercureError.badRequest('name at least one topic: match=<topic> (or, Mercure 0.x, topic=<selector>)');
  return matchers;
}

/**
 * Where a reconnecting subscriber resumes: after the update it names. `earliest` (or an id whose
 * update is gone past the retention) replays what is kept; an id this hub never gave replays
 * nothing. `anchor` is what the response's Mercure-Last-Event-ID says.
 */
async function resumeFrom(asked: string, log: MessageLog, findEventId: (id: string) => Promise<number | null>): Promise<{ after: number | undefined; anchor: string }> {
  if (asked === 'earliest') return { after: 0, anchor: 'earliest' };
  const own = /^#(\d{1,15})$/.exec(asked);
  // An id no update can have (control characters, too long) is not looked for: the database is not asked to hold it.
  const possible = asked.length <= MAX_MATCHER_LENGTH && !hasForbiddenCharacter(asked);
  const position = own ? Number(own[1]) : possible ? await findEventId(asked) : null;
  if (position === null) return { after: undefined, anchor: 'earliest' };
  const expiredUpTo = await log.expiredUpTo();
  return position < expiredUpTo ? { after: position, anchor: 'earliest' } : { after: position, anchor: asked };
}
