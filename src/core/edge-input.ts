/**
 * What enters from outside is read here, once, with limits: JSON no deeper than
 * MESH_MAX_JSON_DEPTH, and text that Postgres and HTTP headers can hold. A
 * string with a NUL or a lone UTF-16 surrogate is valid JavaScript, but it fails
 * the statement it reaches (and with group commit, everyone's publishes in that
 * statement); a JSON value nested thousands deep parses fine, then overflows the
 * stack when it is encoded again. Both are refused here with a client error.
 */
import { MeshError } from './errors.ts';

/** The nesting depth JSON input may have by default (Centrifugo and most JSON servers allow tens). */
export const DEFAULT_MAX_JSON_DEPTH = 32;

// An escape that may stand for a NUL or a surrogate half; where none appears, no parsed string holds one.
const SUSPECT_ESCAPE = /\\u(?:0000|[dD][89a-fA-F])/;

/** Whether `text` can be stored and sent as it is: no NUL, no lone surrogate. */
export function isCleanText(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}

/** Whether `text` may be an id (a uid, a connection's): clean, and no control character either (ids end up in logs and headers). */
export function isIdText(text: string): boolean {
  return isCleanText(text) && !/[\x00-\x1f\x7f]/.test(text);
}

function badText(what: string): MeshError {
  return new MeshError('ERR_BAD_TEXT', `${what} holds a NUL character or a lone UTF-16 surrogate`);
}

/** Whether a JSON text nests arrays and objects deeper than `max` (brackets inside strings do not count). */
function nestsDeeper(text: string, max: number): boolean {
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

// Depth is already bounded when this runs, so the recursion is too.
function allClean(value: unknown): boolean {
  if (typeof value === 'string') return isCleanText(value);
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) return value.every(allClean);
  for (const key in value) {
    if (!isCleanText(key) || !allClean((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/**
 * Parses JSON from outside: ERR_BAD_JSON when it is not JSON, ERR_TOO_DEEP past `maxDepth`,
 * ERR_BAD_TEXT when any string in it (keys too) holds a NUL or a lone surrogate.
 * `what` names the input in the error ("frame", "request body").
 */
export function readJson(text: string, maxDepth: number, what: string): unknown {
  if (!text.isWellFormed()) throw badText(what);
  if (nestsDeeper(text, maxDepth)) throw new MeshError('ERR_TOO_DEEP', `${what} nests deeper than ${maxDepth} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MeshError('ERR_BAD_JSON', `${what} is not valid JSON`);
  }
  if (SUSPECT_ESCAPE.test(text) && !allClean(value)) throw badText(`a string in the ${what}`);
  return value;
}

/** readJson that answers undefined instead of throwing (for inputs whose own protocol has no error to give). */
export function readJsonOrUndefined(text: string | undefined, maxDepth: number): unknown {
  if (text === undefined) return undefined;
  try {
    return readJson(text, maxDepth, 'text');
  } catch {
    return undefined;
  }
}

const encoder = new TextEncoder();

/** `reason` cut to what a WebSocket close frame carries (123 bytes of UTF-8), on a character boundary. */
export function closeReason(reason: string): string {
  if (reason.length * 3 <= 123) return reason;
  const bytes = encoder.encode(reason);
  if (bytes.length <= 123) return reason;
  let end = 123;
  // Back off to the first byte of a character (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
