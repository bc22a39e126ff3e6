/** Channel names and grants on their own: the glob matcher, connmix's user_<uid> spelling, and who may subscribe. */
import { describe, expect, test } from 'bun:test';
import { canSubscribe, canonicalChannel, matchesPattern, resolveChannel, uidOfTarget } from '../src/core/channels.ts';

describe('grant patterns', () => {
  const cases: [string, string, boolean][] = [
    ['room_1', 'room_1', true],
    ['room_1', 'room_10', false],
    ['room_*', 'room_10', true],
    ['room_*', 'room_', true],
    ['room_*', 'roo', false],
    ['*_admin', 'team_admin', true],
    ['*_admin', 'team_admins', false],
    ['user:*:inbox', 'user:7:inbox', true],
    ['user:*:inbox', 'user:7:outbox', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false],
    // A middle part must not overlap the suffix: 'ab' + 'b' needs two b's.
    ['a*b*b', 'ab', false],
    ['*', 'anything', true],
  ];
  for (const [pattern, channel, expected] of cases) {
    test(`${pattern} ${expected ? 'matches' : 'does not match'} ${channel}`, () => {
      expect(matchesPattern(pattern, channel)).toBe(expected);
    });
  }
});

describe("connmix's user_<uid>", () => {
  test('is the personal channel user:<uid>, named in frames the way the client wrote it', () => {
    expect(resolveChannel('user_10001', '10001')).toEqual({ channel: 'user:10001', name: 'user_10001' });
    expect(resolveChannel('@user', '10001')).toEqual({ channel: 'user:10001', name: 'user:10001' });
    expect(resolveChannel('room_1', '10001')).toEqual({ channel: 'room_1', name: 'room_1' });
    expect(canonicalChannel('user_')).toBe('user_');
  });

  test('only its owner (or a grant) may subscribe', () => {
    const grants = (uid: string, subscribe: string[] = []) => ({ uid, subscribe, publish: null });
    expect(canSubscribe(grants('10001'), resolveChannel('user_10001', '10001').channel)).toBe(true);
    expect(canSubscribe(grants('10002'), resolveChannel('user_10001', '10002').channel)).toBe(false);
    expect(canSubscribe(grants('ops', ['user:*']), resolveChannel('user_10001', 'ops').channel)).toBe(true);
  });

  test('sendtouser targets: user_<uid>, user:<uid> or the bare uid', () => {
    expect(['user_10001', 'user:10001', '10001'].map(uidOfTarget)).toEqual(['10001', '10001', '10001']);
  });
});
