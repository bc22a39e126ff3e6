/**
 * Mercure topic matchers: what a subscriber's `match` / `match_urlpattern`
 * (Mercure 1.0) or `topic` (0.x) parameters and the topic lists of tokens
 * select. `*` matches every topic whatever the type. Exact matching compares
 * bytes. URL patterns follow the WHATWG URL Pattern standard, relative ones
 * resolved against the hub's URL; custom regular-expression groups are refused,
 * so no pattern a client sends can make matching backtrack without bound. URI
 * templates (RFC 6570, Mercure 0.x) become anchored regular expressions of
 * fixed shapes.
 */
import { URLPattern } from 'urlpattern-polyfill';
import { MercureError } from './errors.ts';

export type MatcherType = 'exact' | 'urlpattern' | 'uritemplate';

/** One compiled topic matcher. */
export interface TopicMatcher {
  type: MatcherType;
  /** As given (the subscription's identity in the subscriptions API). */
  value: string;
  /** It matches `value` alone (an exact matcher, or a URI template without expressions): it can be looked up. */
  literal: boolean;
  matches(topic: string): boolean;
}

/** The longest matcher accepted, in characters. */
export const MAX_MATCHER_LENGTH = 2048;
// C0, DEL, C1 and Unicode format characters (Cf): invisible, and they let one topic pass for another.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\p{Cf}]/u;

/** Whether a topic, id or type holds a character Mercure forbids in them. */
export function hasForbiddenCharacter(text: string): boolean {
  return FORBIDDEN.test(text) || !text.isWellFormed();
}

/** Compiles a matcher; throws MercureError (400) for one that is not valid for its type. */
export function topicMatcher(type: MatcherType, value: string, hubUrl: string): TopicMatcher {
  if (value.length > MAX_MATCHER_LENGTH) throw MercureError.badRequest(`a topic matcher is longer than ${MAX_MATCHER_LENGTH} characters`);
  if (hasForbiddenCharacter(value)) throw MercureError.badRequest('a topic matcher holds a control or format character');
  if (value === '*') return { type, value, literal: false, matches: () => true };
  if (type === 'exact') return { type, value, literal: true, matches: (topic) => topic === value };
  if (type === 'urlpattern') return urlPatternMatcher(value, hubUrl);
  return uriTemplateMatcher(value);
}

function urlPatternMatcher(value: string, hubUrl: string): TopicMatcher {
  // A custom group (`:id(\\d+)`, `(.*)`) is a regular expression of the client's: refused, so
  // matching stays within the fixed, linear shapes the standard compiles names and wildcards to.
  if (/(^|[^\\])\(/.test(value)) throw MercureError.badRequest('URL patterns with regular-expression groups are not accepted');
  let pattern: URLPattern;
  try {
    pattern = new URLPattern(value, hubUrl);
  } catch {
    throw MercureError.badRequest(`not a URL pattern: ${value.slice(0, 100)}`);
  }
  return {
    type: 'urlpattern',
    value,
    literal: false,
    matches(topic) {
      try {
        return pattern.test(topic, hubUrl);
      } catch {
        return false; // a topic that is no URL matches no URL pattern
      }
    },
  };
}

// RFC 6570: what one variable's expansion can look like, by operator. Simple expansions are
// unreserved characters and %-escapes (commas join list items); + and # also allow reserved ones.
const VALUE = "(?:[A-Za-z0-9\\-._~,]|%[0-9A-Fa-f]{2})*";
const RESERVED = "[A-Za-z0-9\\-._~:/?#\\[\\]@!$&'()*+,;=%]*";
const EXPANSION: Record<string, string> = {
  '': VALUE,
  '+': RESERVED,
  '#': `(?:#${RESERVED})?`,
  '.': `(?:\\.${VALUE})*`,
  '/': `(?:/${VALUE})*`,
  ';': `(?:;${VALUE}(?:=${VALUE})?)*`,
  '?': `(?:\\?${VALUE}=${VALUE}(?:&${VALUE}=${VALUE})*)?`,
  '&': `(?:&${VALUE}=${VALUE})*`,
};
/** Expressions per template: each is a loop of the matcher, so a template's cost grows with their number. */
const MAX_EXPRESSIONS = 8;

function uriTemplateMatcher(value: string): TopicMatcher {
  // Still a 0.x subscription (its events and API documents take 0.x's shape), matched as a plain string.
  if (!value.includes('{') && !value.includes('}')) return { type: 'uritemplate', value, literal: true, matches: (topic) => topic === value };
  const parts = value.split(/(\{[+#./;?&]?[A-Za-z0-9_.%]+(?::[1-9][0-9]{0,3}|\*)?(?:,[A-Za-z0-9_.%]+(?::[1-9][0-9]{0,3}|\*)?)*\})/);
  const expressions = parts.filter((_, i) => i % 2 === 1);
  const literals = parts.filter((_, i) => i % 2 === 0);
  // Two expressions side by side would make one match try every split between them: refused.
  if (literals.some((l) => l.includes('{') || l.includes('}')) || literals.slice(1, -1).some((l) => l === '') || expressions.length > MAX_EXPRESSIONS) {
    throw MercureError.badRequest(`not a URI template this hub matches: ${value.slice(0, 100)}`);
  }
  let source = '';
  for (const [i, part] of parts.entries()) {
    if (i % 2 === 0) source += escape(part);
    else source += EXPANSION[/^\{([+#./;?&]?)/.exec(part)![1]!];
  }
  const regexp = new RegExp(`^${source}$`);
  return { type: 'uritemplate', value, literal: false, matches: (topic) => regexp.test(topic) };
}

function escape(literal: string): string {
  return literal.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
