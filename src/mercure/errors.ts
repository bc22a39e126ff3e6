/**
 * What the Mercure endpoints answer when they refuse: RFC 6750's errors, carried
 * in a `WWW-Authenticate: Bearer` challenge as the protocol wants (401 with no
 * error code when no token came, 401 invalid_token, 403 insufficient_scope, 400
 * invalid_request), and plain 400s and 413s for requests malformed apart from
 * their token. The body says why in a line of text.
 */

/** The RFC 6750 error of a challenge; null: a 401 that only asks for a token. */
export type BearerError = 'invalid_token' | 'insufficient_scope' | 'invalid_request' | null;

export class MercureError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 413 | 429 | 503,
    message: string,
    /** The challenge's error, or undefined for an answer with no challenge. */
    readonly bearer?: BearerError,
  ) {
    super(message);
    this.name = 'MercureError';
  }

  /** A request malformed apart from its token (no challenge). */
  static badRequest(message: string): MercureError {
    return new MercureError(400, message);
  }

  /** No token where one is needed. */
  static noToken(message = 'an access token is required'): MercureError {
    return new MercureError(401, message, null);
  }

  /** A token that did not validate: the reason is logged, never told (RFC 6750 and the protocol advise so). */
  static invalidToken(): MercureError {
    return new MercureError(401, 'the access token is not valid', 'invalid_token');
  }

  /** A valid token that does not grant what was asked. */
  static insufficientScope(message: string): MercureError {
    return new MercureError(403, message, 'insufficient_scope');
  }

  /** The response: status, challenge and a line of text. */
  toResponse(headers: Record<string, string> = {}): Response {
    const all: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', ...headers };
    if (this.bearer !== undefined) all['www-authenticate'] = this.bearer === null ? 'Bearer realm="mercure"' : `Bearer realm="mercure", error="${this.bearer}"`;
    return new Response(`${this.message}\n`, { status: this.status, headers: all });
  }
}
