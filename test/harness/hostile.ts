/**
 * What the worst client on the internet sends, as fast-check arbitraries: JSON
 * of every shape (deep, wide, huge numbers, wrong types) with strings holding
 * NUL, lone surrogates, control characters and header separators, in every
 * field of every protocol's frames; and raw text that is not JSON at all.
 */
import fc from 'fast-check';

/** A JSON array nested `depth` deep, written as text (so the test process never encodes it). */
export class Deep {
  constructor(readonly depth: number) {}
}

/** Strings that have broken servers: NUL, lone surrogates, CR/LF, header separators, long multi-byte text. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  // Any UTF-16 unit, lone surrogates included.
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
  fc.constantFrom('\u0000', '\ud800', '\udfff', 'a\u0000b', 'x\ud83d', '再'.repeat(48), 'x;app=a;region=b', 'a\r\nset-cookie: x=1', '$cmd', '$all', 'user:1', '@user', 'private-x', 'presence-x', ''),
);

const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 0.5, 1e-320));

/** Any JSON value built from nasty strings and numbers, sometimes nested thousands deep. */
export const nastyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.integer({ min: 20, max: 6000 }).map((n) => new Deep(n)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(nastyString, tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** JSON text of a value from these arbitraries (a Deep is written out as nested brackets). */
export function jsonText(value: unknown): string {
  if (value instanceof Deep) return '['.repeat(value.depth) + ']'.repeat(value.depth);
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A value for a field: mostly of the type the field wants, often not. */
const field = (good: fc.Arbitrary<unknown>) => fc.oneof({ weight: 2, arbitrary: good }, { weight: 1, arbitrary: nastyValue });

const PGMESH_OPS = ['auth', 'refresh', 'subscribe', 'unsubscribe', 'publish', 'sendtoroom', 'sendtouser', 'sendbroadcast', 'ack', 'ping', 'rpc'];

/** A pgmesh client frame (either dialect), or raw text. */
export const pgmeshFrame: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record(
        {
          op: field(fc.constantFrom(...PGMESH_OPS)),
          args: fc.array(nastyValue, { maxLength: 3 }),
          channel: field(nastyString),
          channels: field(fc.array(nastyString, { maxLength: 4 })),
          data: nastyValue,
          token: field(nastyString),
          rid: nastyValue,
          since: field(fc.nat()),
          id: field(fc.nat()),
          user: field(nastyString),
          method: field(nastyString),
          presence: field(fc.boolean()),
        },
        { requiredKeys: [] },
      )
      .map(jsonText),
  },
  { weight: 1, arbitrary: fc.string() },
  { weight: 1, arbitrary: nastyValue.map(jsonText) },
);

const PUSHER_EVENTS = ['pusher:ping', 'pusher:subscribe', 'pusher:unsubscribe', 'pusher:signin', 'client-x'];

/** A Pusher socket frame, or raw text. */
export const pusherFrame: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record(
        {
          event: field(fc.oneof(fc.constantFrom(...PUSHER_EVENTS), nastyString.map((s) => `client-${s}`))),
          channel: field(fc.oneof(fc.constantFrom('private-x', 'presence-x', 'public'), nastyString)),
          data: fc.oneof(
            fc.record(
              { channel: field(nastyString), auth: field(nastyString), channel_data: field(nastyValue.map(jsonText)), user_data: field(nastyValue.map(jsonText)) },
              { requiredKeys: [] },
            ),
            nastyValue,
          ),
        },
        { requiredKeys: [] },
      )
      .map(jsonText),
  },
  { weight: 1, arbitrary: fc.string() },
);

/** Some bytes percent-encoded for a URL path or query (invalid UTF-8 and separators included), or a nasty string encoded as UTF-8. */
export const urlPart: fc.Arbitrary<string> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 12 }).map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
  nastyString.map((s) => [...new TextEncoder().encode(s.length > 0 ? s : 'x')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
  fc.constantFrom('x', 'a.b', 'a.b;c=d', 'user:1', 'presence-x'),
);

/** A publish body: connmix, named, `all` or batches of them, with nasty fields; or any JSON; or raw text. */
export const publishBody: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ c: field(nastyString), d: nastyValue, channel: field(nastyString), data: nastyValue, all: field(fc.constant(true)), exclude: field(fc.array(nastyString, { maxLength: 3 })) }, { requiredKeys: [] })
      .map(jsonText),
  },
  { weight: 1, arbitrary: fc.array(fc.record({ c: field(nastyString), d: nastyValue }), { maxLength: 4 }).map(jsonText) },
  { weight: 1, arbitrary: nastyValue.map(jsonText) },
  { weight: 1, arbitrary: fc.string() },
);
