/**
 * Every error pgmesh reports is a MeshError with a stable string code (jose style,
 * for logs and HTTP bodies) and a stable numeric code (the connmix/GatewayWorker
 * style `code` in WebSocket reply frames). Clients switch on the codes, never on text.
 */

const KINDS = {
  ERR_NOT_AUTH: { num: 1, http: 401, text: 'Not Auth' },
  ERR_TOKEN_INVALID: { num: 2, http: 401, text: 'invalid token' },
  ERR_TOKEN_EXPIRED: { num: 3, http: 401, text: 'token expired' },
  ERR_TOKEN_NOT_YET_VALID: { num: 4, http: 401, text: 'token not yet valid' },
  ERR_TOKEN_CLAIM: { num: 5, http: 401, text: 'token claim check failed' },
  ERR_AUTH_UNAVAILABLE: { num: 6, http: 503, text: 'authentication service unavailable' },
  ERR_BAD_JSON: { num: 10, http: 400, text: 'invalid JSON' },
  ERR_UNKNOWN_OP: { num: 11, http: 400, text: 'unknown op' },
  ERR_BAD_ARGS: { num: 12, http: 400, text: 'invalid arguments' },
  ERR_BINARY_FRAME: { num: 13, http: 400, text: 'binary frames are not supported' },
  ERR_TOO_DEEP: { num: 14, http: 400, text: 'JSON nested too deep' },
  ERR_BAD_TEXT: { num: 15, http: 400, text: 'text holds a NUL character or a lone UTF-16 surrogate' },
  ERR_DATA_REFUSED: { num: 16, http: 400, text: 'the database refused this data' },
  ERR_FORBIDDEN: { num: 20, http: 403, text: 'permission denied' },
  ERR_BAD_CHANNEL: { num: 21, http: 400, text: 'invalid channel name' },
  ERR_TOO_LARGE: { num: 22, http: 413, text: 'message too large' },
  ERR_UNSUPPORTED_MEDIA: { num: 24, http: 415, text: 'unsupported content type' },
  ERR_BAD_API_KEY: { num: 23, http: 401, text: 'missing or wrong API key' },
  ERR_READ_ONLY: { num: 25, http: 403, text: 'this key reads and changes nothing' },
  ERR_CSRF: { num: 26, http: 403, text: 'a console change needs the session\'s CSRF token (x-pgmesh-csrf)' },
  ERR_UNAVAILABLE: { num: 30, http: 503, text: 'store unavailable' },
  ERR_INTERNAL: { num: 31, http: 500, text: 'internal error' },
  ERR_OUTCOME_UNKNOWN: { num: 32, http: 504, text: 'the database did not say whether the message was stored' },
  ERR_DRAINING: { num: 33, http: 503, text: 'this instance is shutting down: connect to another' },
  ERR_NOT_FOUND: { num: 40, http: 404, text: 'not found' },
  ERR_CLOSED: { num: 41, http: 410, text: 'connection closed' },
  ERR_FLOOD: { num: 42, http: 429, text: 'too many ops in flight' },
  ERR_LIMIT: { num: 43, http: 429, text: 'a limit of this server was reached' },
  ERR_FULL: { num: 44, http: 503, text: 'this instance holds all the connections it can: try again, or another instance' },
  ERR_RPC_REFUSED: { num: 50, http: 422, text: 'the backend refused the call' },
  ERR_RPC_TIMEOUT: { num: 51, http: 504, text: 'the backend did not answer in time' },
  ERR_RPC_UNAVAILABLE: { num: 52, http: 502, text: 'the backend could not answer' },
} as const;

export type MeshErrorCode = keyof typeof KINDS;

/** A typed, coded error: what a client or caller is told, and how. */
export class MeshError extends Error {
  readonly code: MeshErrorCode;
  /** More fields for the error frame or body (the backend's own error, for ERR_RPC_REFUSED). */
  readonly detail: Record<string, unknown> | undefined;
  constructor(code: MeshErrorCode, message?: string, options?: { cause?: unknown; detail?: Record<string, unknown> }) {
    super(message ?? KINDS[code].text, options);
    this.name = 'MeshError';
    this.code = code;
    this.detail = options?.detail;
  }
  /** The numeric code carried in WebSocket/SSE reply frames. */
  get num(): number {
    return KINDS[this.code].num;
  }
  /** The HTTP status this error answers with. */
  get http(): 400 | 401 | 403 | 404 | 410 | 413 | 415 | 422 | 429 | 500 | 502 | 503 | 504 {
    return KINDS[this.code].http;
  }
}

/** ERR_BAD_ARGS naming the first problem zod found, e.g. "subscribe: channels: no channel given". */
export function badArgs(issues: readonly { path: readonly PropertyKey[]; message: string }[], prefix = ''): MeshError {
  const issue = issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
  return new MeshError('ERR_BAD_ARGS', `${prefix}${where}${issue?.message ?? 'invalid'}`);
}

/** Wraps anything thrown into a MeshError, so no raw exception text reaches a client. */
export function asMeshError(err: unknown): MeshError {
  return err instanceof MeshError ? err : new MeshError('ERR_INTERNAL', undefined, { cause: err });
}
