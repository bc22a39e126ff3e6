/**
 * Mercure's active subscriptions: each subscriber's matchers are kept in the
 * cluster's presence (the info of its `$mercure` row), so any instance lists the
 * subscriptions of every instance; and the hub publishes a private update of
 * type `mercure` when a subscription starts or ends. Documents come in the
 * shape of the generation that made the subscription: 1.0's
 * (`/subscriptions/{match_type}/{match}/{subscriber}`, `type: "subscription"`)
 * or 0.x's (`/subscriptions/{topic}/{subscriber}`, JSON-LD `type: "Subscription"`).
 */
import { z } from 'zod';
import type { MercureGrant } from './grants.ts';
import type { MatcherType, TopicMatcher } from './topic-matcher.ts';

/** One matcher of a subscriber, with the payload its token attaches to it. */
export const SubscriptionEntry = z.object({ type: z.enum(['exact', 'urlpattern', 'uritemplate']), match: z.string(), payload: z.unknown().optional() });
export type SubscriptionEntry = z.infer<typeof SubscriptionEntry>;

/**
 * What a subscriber's presence row says about it. `ended` holds the updates that announce the end of
 * its subscriptions, as the hub would publish them: if its instance dies, the database publishes them
 * when it reaps the row (mesh_cluster_apply), once, so a killed subscriber is announced inactive too.
 */
export const SubscriberInfo = z.object({ subscriber: z.string(), subscriptions: z.array(SubscriptionEntry), ended: z.array(z.string()).optional() });
export type SubscriberInfo = z.infer<typeof SubscriberInfo>;

/** A new subscriber's identity and subscriptions: a random id per connection, as the protocol recommends. */
export function subscriberInfo(matchers: readonly TopicMatcher[], grant: MercureGrant | null): SubscriberInfo {
  const subscriptions = matchers.map((m): SubscriptionEntry => {
    const payload = grant?.payloads.find((p) => p.matcher.matches(m.value))?.payload;
    return payload === undefined ? { type: m.type, match: m.value } : { type: m.type, match: m.value, payload };
  });
  return { subscriber: `urn:uuid:${crypto.randomUUID()}`, subscriptions };
}

/** The topic of a subscription's events, which is also its path in the subscriptions API. */
export function subscriptionTopic(hubPath: string, entry: SubscriptionEntry, subscriber: string): string {
  const match = encodeURIComponent(entry.match);
  return entry.type === 'uritemplate'
    ? `${hubPath}/subscriptions/${match}/${encodeURIComponent(subscriber)}`
    : `${hubPath}/subscriptions/${entry.type}/${match}/${encodeURIComponent(subscriber)}`;
}

/** The document of one subscription, in its generation's shape. */
export function subscriptionDocument(hubPath: string, entry: SubscriptionEntry, subscriber: string, active: boolean): Record<string, unknown> {
  const id = subscriptionTopic(hubPath, entry, subscriber);
  const payload = entry.payload === undefined ? {} : { payload: entry.payload };
  if (entry.type === 'uritemplate') return { '@context': 'https://mercure.rocks/', id, type: 'Subscription', topic: entry.match, subscriber, active, ...payload };
  return { id, type: 'subscription', match_type: entry.type, match: entry.match, subscriber, active, ...payload };
}

/** Which subscriptions an API path asks for: all, those of one matcher, or one. Null: not a subscriptions path. */
export function subscriptionsQuery(segments: readonly string[]): { type?: MatcherType; match?: string; subscriber?: string } | null {
  if (segments.length === 0) return {};
  const [first, second, third] = segments;
  // 1.0 paths name a matcher type first; a 0.x path starts with the topic selector.
  if ((first === 'exact' || first === 'urlpattern') && segments.length >= 2 && segments.length <= 3) return { type: first, match: second, subscriber: third };
  if (segments.length <= 2) return { type: 'uritemplate', match: first, subscriber: second };
  return null;
}

/** The data of the private updates (type `mercure`) announcing that a subscriber's subscriptions began or ended, one per subscription. */
export function subscriptionUpdates(hubPath: string, info: SubscriberInfo, active: boolean): string[] {
  return info.subscriptions.map((entry) =>
    JSON.stringify({ t: [subscriptionTopic(hubPath, entry, info.subscriber)], d: JSON.stringify(subscriptionDocument(hubPath, entry, info.subscriber, active)), e: 'mercure', p: 1 }),
  );
}
